#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds the guest test programs, runs xunit.
# With P2PREPLAY_REQUIRE_KVM=1 (as CI sets it) tests that need /dev/kvm fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

scripts/ensure-deps.sh
tests/guests/build.sh >/dev/null
echo "==> publishing the NativeAOT binary (the end-to-end tests run it)"
dotnet publish src/P2PReplay/P2PReplay.csproj -c Release -o out --nologo -v quiet
echo "==> running the tests"
dotnet test P2PReplay.sln --nologo -v quiet --logger "console;verbosity=normal" "$@"
