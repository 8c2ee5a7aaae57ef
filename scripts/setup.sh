#!/usr/bin/env bash
# Set up a fresh machine for EdgeKit: a virtual environment in .venv with every extra,
# and the Mosquitto broker the agent's tests run against. Idempotent: a second run only
# checks. Needs Python >= 3.10 with venv; installs Mosquitto with apt-get when it can.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${EDGEKIT_VENV:-.venv}
# torch pinned: on this project's machines 2.13.0 is a local CPU build; an unpinned
# 'torch' would pull the newest release with several GB of CUDA libraries.
TORCH=${EDGEKIT_TORCH:-torch==2.13.0}

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

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.edgekit-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing $TORCH and edgekit[all] into $VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q "$TORCH"
  "$PY" -m pip install -q -e '.[all]'
  touch "$stamp"
fi
log "ready: $("$PY" -c 'import edgekit, onnxruntime, numpy; print("edgekit", edgekit.__version__, "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)')"
