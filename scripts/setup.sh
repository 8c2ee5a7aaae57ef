#!/usr/bin/env bash
# Set up a fresh machine for EdgeKit: a virtual environment in .venv with every extra,
# the Mosquitto broker the agent's tests run against, and PostgreSQL for the hub's store
# tests. Idempotent: a second run only checks. Needs Python >= 3.10 with venv; installs
# Mosquitto and PostgreSQL with apt-get when it can.
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

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing the Mosquitto broker (Debian package)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
    systemctl disable --now mosquitto >/dev/null 2>&1 || true  # the tests start their own on a free port
  else
    log "Mosquitto is not installed and apt-get is not usable here; install it (brew install mosquitto, apt install mosquitto) for the agent's broker tests"
  fi
fi

if ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing PostgreSQL (Debian package) for the hub's store tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    systemctl disable --now postgresql >/dev/null 2>&1 || true  # the tests start a throwaway cluster of their own
  else
    log "PostgreSQL is not installed and apt-get is not usable here; install it (apt install postgresql) for the hub's PostgreSQL store tests"
  fi
fi

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
