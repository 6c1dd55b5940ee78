#!/usr/bin/env bash
# Runs the same work through elbus and through D-Bus, back to back on this
# machine, and prints the ratio: one client sends 100-byte messages to
# itself through the bus, at most 4096 in flight.
#   elbus:  elbus benchmark's send+recv.qos.no stage (ElbusClient, elbusd)
#   D-Bus:  elbus-bench-dbus (GDBus unicast signals, a private dbus-daemon)
# Usage: tests/bench/compare-dbus.sh [BUILD_DIR] [MESSAGES]
set -euo pipefail

build=${1:-build}
count=${2:-200000}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

"$build/tools/elbusd" -B "$dir/elbus.sock" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$dir/elbus.sock" ] && break; sleep 0.05; done

elbus_rate=$("$build/tools/elbus" "$dir/elbus.sock" benchmark -i "$count" |
             awk '$1 == "send+recv.qos.no" { print $2 }')
dbus_line=$("$build/tests/bench/elbus-bench-dbus" -n "$count" 2>/dev/null)
dbus_rate=$(sed -n 's/.*: \([0-9]*\) msgs\/s.*/\1/p' <<<"$dbus_line")

echo "elbus send+recv.qos.no: $elbus_rate msgs/s"
echo "$dbus_line"
awk -v e="$elbus_rate" -v d="$dbus_rate" 'BEGIN { printf "elbus / D-Bus: %.1f x\n", e / d }'
