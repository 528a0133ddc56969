#!/usr/bin/env bash
# Installs what p2preplay's build, examples and tests need on Debian, if it is missing.
set -euo pipefail

need=()
# curl, python3: control-socket tests; iproute2: the mDNS network-namespace test; systemd: systemd-analyze verify of the unit.
for pkg in busybox-static musl-tools gcc libc6-dev file curl iproute2 systemd adduser python3; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null 2>&1; then
    echo "error: the .NET 10 SDK (dotnet) is not on PATH; install it first (see README.md)" >&2
    exit 1
fi

if [ ! -e /dev/kvm ]; then
    echo "warning: /dev/kvm is missing: VMs cannot run here (enable virtualization, modprobe kvm_intel or kvm_amd)" >&2
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "warning: no access to /dev/kvm: add yourself to the kvm group (sudo usermod -aG kvm \$USER) and log in again" >&2
fi
