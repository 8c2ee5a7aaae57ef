#!/usr/bin/env bash
# The agent on arm64 under QEMU user-mode emulation (no Pi needed): builds (once, cached) a Debian
# bookworm arm64 root with debootstrap, the base of Raspberry Pi OS, copies this checkout into it,
# and runs tests/device_agent/test_arm64.py: the one-line installer inside the root, then the agent loading a
# Raspberry Pi bundle and publishing results to a broker on this machine. Needs root (chroot,
# mounts) and installs qemu-user-static and debootstrap with apt-get when they are missing.
# About 5 minutes the first time (debootstrap), then about 3-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;36m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "test-arm64: needs root (chroot and mounts); run it with sudo" >&2; exit 2; }

if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing qemu-user-static and debootstrap (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support debootstrap >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi

CACHE="${EDGEKIT_CACHE:-$HOME/.cache/edgekit}/arm64"
TARBALL="$CACHE/debian-bookworm-arm64.tar"
if [ ! -f "$TARBALL" ]; then
    say "debootstrap: Debian bookworm arm64 (minbase + python3, python3-venv), once"
    build=$(mktemp -d /tmp/edgekit-debootstrap.XXXXXX)
    chmod 755 "$build"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$build" http://deb.debian.org/debian >/dev/null
    mkdir -p "$CACHE"
    tar -C "$build" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    rm -rf "$build"
fi

ROOT=$(mktemp -d /tmp/edgekit-arm64.XXXXXX)
cleanup() {
    umount "$ROOT/proc/cpuinfo" 2>/dev/null || true
    for m in dev proc; do umount -R "$ROOT/$m" 2>/dev/null || umount -l "$ROOT/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
say "fresh arm64 root in $ROOT"
tar -C "$ROOT" -xf "$TARBALL"
chmod 755 "$ROOT"  # it becomes /, which the service user must be able to enter (mktemp made it 0700)
mkdir -p "$ROOT/opt/src/edgekit" "$ROOT/opt/test"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$ROOT/opt/src/edgekit"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the root trusts what this machine trusts (here, a TLS-inspecting proxy in front of PyPI)
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
scripts/setup.sh
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
# QEMU user mode shows the emulated programs this machine's x86 /proc/cpuinfo, which the CPU
# detection inside onnxruntime and LiteRT (pytorch/cpuinfo) cannot parse: both crash (SIGSEGV)
# on import or load. A Raspberry Pi 5's own /proc/cpuinfo (recorded from a board) goes in its place.
# This machine's /sys is NOT mounted: with its x86 CPU topology beside the Pi's cpuinfo, LiteRT's
# int8 kernels computed wrong outputs under emulation (the agent's golden self test refused the
# bundle, as it should).
.venv/bin/python -c "from tests.device_agent.test_bench_hardware import PI5_CPUINFO; print(PI5_CPUINFO, end='')" > "$ROOT/tmp/cpuinfo"
mount --bind "$ROOT/tmp/cpuinfo" "$ROOT/proc/cpuinfo"
say "tests/device_agent/test_arm64.py under emulation"
EDGEKIT_ARM64_ROOT="$ROOT" .venv/bin/python -m pytest tests/device_agent/test_arm64.py -q -s -p no:cacheprovider "$@"
