#!/usr/bin/env bash
# Builds p2preplay_<version>_amd64.deb with dpkg-deb: the NativeAOT binary with libsodium.so beside it, the systemd
# unit, a default config, and maintainer scripts that create the p2preplay system user and group.
# usage: packaging/build-deb.sh [--from PUBLISH_DIR] [OUTPUT_DIR]   (default output: out/deb)
#   --from DIR  package an already published binary (DIR/p2preplay and DIR/libsodium.so) instead of publishing
set -euo pipefail
cd "$(dirname "$0")/.."
from=""
if [[ "${1:-}" == "--from" ]]; then from="$(realpath "$2")"; shift 2; fi
out="$(realpath -m "${1:-out/deb}")"
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)"
[[ -n "$version" ]] || { echo "build-deb: no <Version> in Directory.Build.props" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
publish="$stage/publish"
root="$stage/root"

if [[ -n "$from" ]]; then
    publish="$from"
else
    echo "==> publishing p2preplay $version" >&2
    dotnet publish src/P2PReplay/P2PReplay.csproj -c Release -o "$publish" --nologo -v quiet >&2
fi
[[ -f "$publish/libsodium.so" ]] || { echo "build-deb: publish did not produce libsodium.so" >&2; exit 1; }

install -D -m 0755 "$publish/p2preplay" "$root/usr/lib/p2preplay/p2preplay"
install -D -m 0644 "$publish/libsodium.so" "$root/usr/lib/p2preplay/libsodium.so"
mkdir -p "$root/usr/bin"
ln -s ../lib/p2preplay/p2preplay "$root/usr/bin/p2preplay"
install -D -m 0644 systemd/p2preplay.service "$root/lib/systemd/system/p2preplay.service"
install -D -m 0644 packaging/p2preplay.conf "$root/etc/p2preplay/p2preplay.conf"
install -D -m 0644 README.md "$root/usr/share/doc/p2preplay/README.md"
install -D -m 0644 packaging/copyright "$root/usr/share/doc/p2preplay/copyright"

mkdir -p "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
echo /etc/p2preplay/p2preplay.conf > "$root/DEBIAN/conffiles"
size_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: p2preplay
Version: $version
Architecture: amd64
Maintainer: p2preplay developers <dev@p2preplay.invalid>
Installed-Size: $size_kb
Depends: libc6 (>= 2.34), adduser
Section: admin
Priority: optional
Description: replicated KVM microVMs on idle, unmanaged machines
 p2preplay runs a program in a KVM microVM on one idle machine and keeps exact
 replicas on machines at other sites by deterministic record and replay; when
 the primary dies a replica takes over. This package holds the daemon (a
 systemd service) and the admin CLI.
CONTROL

mkdir -p "$out"
deb="$out/p2preplay_${version}_amd64.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
