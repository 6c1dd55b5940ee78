#!/usr/bin/env bash
# What a monitor costs the bus when it filters everything out: elbus
# benchmark's send+recv.qos.no stage through one elbusd, alternately with no
# monitor and with one `elbus-monitor --sender nobody.at.all` connected,
# ROUNDS times each (interleaved, so that the noise of a shared machine hits
# both alike). Prints every run, the medians and their ratios: the stage's
# rate, and the CPU time elbusd spent on the whole benchmark run (all its
# stages, the same work either way), which shared-machine noise disturbs
# less than the rate.
# Usage: tests/bench/compare-monitor.sh [BUILD_DIR] [ITERATIONS] [ROUNDS]
set -euo pipefail

build=${1:-build}
iters=${2:-500000}
rounds=${3:-5}
dir=$(mktemp -d)
mon=""
cleanup () {
  [ -n "$mon" ] && kill "$mon" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$build/tools/elbusd" -B "$dir/elbus.sock" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$dir/elbus.sock" ] && break; sleep 0.05; done

# elbusd's user+system CPU time so far, in clock ticks
cpu_ticks () {
  awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

# prints "RATE CPU_TICKS" for one benchmark run
rate () {
  local before after r
  before=$(cpu_ticks)
  r=$("$build/tools/elbus" "$dir/elbus.sock" benchmark -i "$iters" |
      awk '$1 == "send+recv.qos.no" { print $2 }')
  after=$(cpu_ticks)
  echo "$r $((after - before))"
}

median () {
  sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: > "$dir/none"
: > "$dir/monitor"
for round in $(seq "$rounds"); do
  r=$(rate)
  echo "round $round  no monitor     ${r% *} msgs/s, elbusd ${r#* } ticks"
  echo "$r" >> "$dir/none"

  "$build/tools/elbus-monitor" "$dir/elbus.sock" --sender nobody.at.all \
    > /dev/null 2> "$dir/monitor.err" &
  mon=$!
  for _ in $(seq 200); do grep -q . "$dir/monitor.err" && break; sleep 0.05; done
  r=$(rate)
  echo "round $round  one monitor    ${r% *} msgs/s, elbusd ${r#* } ticks"
  echo "$r" >> "$dir/monitor"
  kill "$mon"
  wait "$mon" 2>/dev/null || true
  mon=""
done

none=$(cut -d' ' -f1 "$dir/none" | median)
with=$(cut -d' ' -f1 "$dir/monitor" | median)
none_cpu=$(cut -d' ' -f2 "$dir/none" | median)
with_cpu=$(cut -d' ' -f2 "$dir/monitor" | median)
echo "median send+recv.qos.no: no monitor $none, one monitor filtering everything $with"
awk -v n="$none" -v m="$with" 'BEGIN { printf "rate with / without: %.3f (%+.1f%%)\n", m / n, (m / n - 1) * 100 }'
echo "median elbusd CPU per run: no monitor $none_cpu ticks, one monitor $with_cpu ticks"
awk -v n="$none_cpu" -v m="$with_cpu" 'BEGIN { printf "CPU with / without: %.3f (%+.1f%%)\n", m / n, (m / n - 1) * 100 }'
