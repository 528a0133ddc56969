#!/usr/bin/env bash
# Gossip failure-detection and false-positive measurements on the deterministic simulator.
# Usage: bench/gossip/run.sh [--trials N] [--hours H] [--loss L]   (defaults: 200 trials, 1 simulated hour, 10% loss)
set -euo pipefail
cd "$(dirname "$0")"
dotnet run -c Release -v quiet --project GossipSim.csproj -- "$@"
