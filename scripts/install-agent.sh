#!/bin/sh
# One command installs the EdgeKit agent as a systemd service on a Raspberry Pi, a Jetson or any
# Linux board that has Python 3.10+ (Raspberry Pi OS bookworm, JetPack 6, Debian, Ubuntu):
#
#   sudo sh scripts/install-agent.sh --device-id cam-01 --broker mqtt.local:1883
#
# It creates the virtual environment /opt/edgekit-agent, installs the agent into it without a
# runtime (edgekit[agent], from this checkout when run from one, else `--package SPEC`, default
# edgekit from PyPI), then hands over to `edgekit-agent install`, which detects the board, adds
# its one runtime (edgekit[agent,tflite] on a Pi, edgekit[agent,onnx] elsewhere, `--runtime
# onnx|tflite` to choose; onnxruntime-gpu on a Jetson with --onnxruntime-wheel/--index-url),
# writes the config, the service user, the state directories and the unit, and enables it.
# Every option goes to `edgekit-agent install` (see `edgekit-agent install --help`).
# Running it again upgrades and keeps /etc/edgekit/agent.toml, the outbox and the bundles.
set -eu
umask 022  # the environment must be readable by the service user, whatever root's umask

PREFIX=/opt/edgekit-agent
PYTHON=${PYTHON:-python3}
say() { printf '\033[1;36m==> %s\033[0m\n' "$*"; }
die() { printf 'install-agent: %s\n' "$*" >&2; exit 2; }

PACKAGE=""
here=$(cd "$(dirname "$0")/.." 2>/dev/null && pwd) || here=""
if [ -n "$here" ] && [ -f "$here/pyproject.toml" ] && grep -q '^name = "edgekit"' "$here/pyproject.toml"; then
    PACKAGE="$here"
fi
prev=""
for arg in "$@"; do
    [ "$prev" = "--package" ] && PACKAGE="$arg"
    prev="$arg"
done
PACKAGE=${PACKAGE:-edgekit}

[ "$(id -u)" = 0 ] || die "run it as root (sudo sh $0 ...): it writes /opt, /etc and the systemd unit"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON was not found; install Python 3.10 or newer first"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$("$PYTHON" -V 2>&1) is too old; the agent needs Python 3.10 or newer"
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "Python's venv module is missing; install it (e.g. python3-venv)"
    say "installing python3-venv (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

say "virtual environment $PREFIX ($("$PYTHON" -V 2>&1), $(uname -m))"
[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --upgrade pip
say "installing the agent from $PACKAGE"
case "$PACKAGE" in
    /*|.*) "$PREFIX/bin/python" -m pip install --quiet --upgrade "$PACKAGE[agent]" ;;
    *) "$PREFIX/bin/python" -m pip install --quiet --upgrade "$(echo "$PACKAGE" | sed 's/^\([A-Za-z0-9_.-]*\)/\1[agent]/')" ;;
esac
say "edgekit-agent install $*"
if [ "$PACKAGE" = "$here" ] && ! printf '%s\n' "$@" | grep -qx -- '--package'; then
    exec "$PREFIX/bin/edgekit-agent" install --package "$PACKAGE" "$@"
fi
exec "$PREFIX/bin/edgekit-agent" install "$@"
