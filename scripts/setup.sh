#!/usr/bin/env bash
# Set up a fresh machine for EdgeKit: a virtual environment in .venv with every extra,
# the Mosquitto broker the agent's tests run against, PostgreSQL for the hub's store
# tests, headless Chromium and Prometheus for the hub's dashboard and /metrics tests.
# Idempotent: a second run only checks. Needs Python >= 3.10 with venv; installs Mosquitto,
# PostgreSQL, Chromium and Prometheus with apt-get when it can.
# Every package comes from the lock, constraints.txt: exactly the versions CI tested
# (`make lock` regenerates it). EDGEKIT_CONSTRAINTS= (empty) installs without it: pip's
# choice within pyproject.toml's ranges.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${EDGEKIT_VENV:-.venv}
LOCK=${EDGEKIT_CONSTRAINTS-constraints.txt}
# torch pinned first, to the lock's version: on this project's machines that is a local CPU
# build; an unpinned 'torch' would pull the newest release with several GB of CUDA libraries.
# EDGEKIT_TORCH chooses another (with EDGEKIT_CONSTRAINTS= unless the lock agrees).
TORCH=${EDGEKIT_TORCH:-$(sed -n 's/^\(torch==[^ ]*\).*/\1/p' constraints.txt)}
TORCH=${TORCH:-torch}
lock=()
[ -z "$LOCK" ] || lock=(-c "$LOCK")

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# apt_install PACKAGE WHY: a Debian package with apt-get where we are root and it exists; the
# service it ships stays stopped (the tests start their own on free ports).
apt_updated=
apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing $1 (Debian package) $2"
    [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
    systemctl disable --now "$1" >/dev/null 2>&1 || true
  else
    log "$1 is not installed and apt-get is not usable here; install it (apt install $1) $2"
  fi
}

command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] ||
  apt_install mosquitto "for the agent's broker tests"
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null ||
  apt_install postgresql "for the hub's PostgreSQL store tests"
command -v chromium >/dev/null 2>&1 || apt_install chromium "for the hub dashboard's browser tests"
command -v prometheus >/dev/null 2>&1 || apt_install prometheus "for the test that scrapes the hub's /metrics"

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.edgekit-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$LOCK" ] && [ "$LOCK" -nt "$stamp" ]; }; then
  log "installing $TORCH and edgekit[all] into $VENV${LOCK:+ (locked: $LOCK)}"
  "$PY" -m pip install -q ${lock[@]+"${lock[@]}"} --upgrade pip
  # --build-constraint (pip >= 25.3, which the lock's pip is): the editable build's setuptools is locked too
  [ -z "$LOCK" ] || lock+=(--build-constraint "$LOCK")
  "$PY" -m pip install -q ${lock[@]+"${lock[@]}"} "$TORCH"
  "$PY" -m pip install -q ${lock[@]+"${lock[@]}"} -e '.[all]'
  touch "$stamp"
fi
log "ready: $("$PY" -c 'import edgekit, onnxruntime, numpy; print("edgekit", edgekit.__version__, "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)')"
