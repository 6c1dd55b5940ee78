#!/usr/bin/env bash
# Hostile clients against elbusd: per input, the broker's RSS peak and
# after, its busy (CPU) time, a bystander's worst round trip and the RSS
# peak of the client that received the input (see hostile.py).
# Usage: tests/bench/hostile.sh [BUILD_DIR] [MIB] [SETTLE_SECONDS]
set -euo pipefail

build=${1:-build}
mib=${2:-16}
settle=${3:-3}
here=$(dirname "$0")

exec python3 "$here/hostile.py" "$build/tools/elbusd" "$build/tools/elbus" "$mib" "$settle"
