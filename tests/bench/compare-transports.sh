#!/usr/bin/env bash
# The same client work over each transport, side by side: one elbusd
# listening on a UNIX socket, on TCP (127.0.0.1) and on WebSocket
# (ws://127.0.0.1:PORT/elbus), and `elbus ADDRESS benchmark` run against
# each in turn. Prints, per transport:
#   - the round trip: rpc.call to .broker, one call at a time (µs per call)
#   - the throughput: send+recv.qos.no with --window 4096 (messages/s)
#   - the CPU time per frame of elbusd and of the elbus client over the
#     whole windowed run (all its stages), frames counted by elbusd (read
#     plus written, from `broker stats`)
# and what WebSocket adds per frame over TCP (libsoup's framing, masking
# and its GIO streams, on each side). Runs the transports ROUNDS times in
# turn (so that a shared machine's noise hits them alike) and prints the
# medians.
# Usage: tests/bench/compare-transports.sh [BUILD_DIR] [ITERATIONS] [ROUNDS]
set -euo pipefail

build=${1:-build}
iters=${2:-200000}
rounds=${3:-1}
rt_iters=$((iters / 10))
dir=$(mktemp -d)
pid=""
cleanup () {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port () {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

unix="$dir/elbus.sock"
tcp="127.0.0.1:$(free_port)"
ws="ws://127.0.0.1:$(free_port)/elbus"
"$build/tools/elbusd" -B "$ws" -B "$tcp" -B "$unix" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$unix" ] && break; sleep 0.05; done

# user+system CPU time so far of process $1, in clock ticks
cpu_ticks () {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

# frames elbusd has read and written so far
frames () {
  "$build/tools/elbus" "$unix" broker stats |
    awk '$1 == "r_frames" || $1 == "w_frames" { n += $2 } END { print n }'
}

median () {
  sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# one round for address $2, named $1: appends "RTT_US RATE BROKER_NS CLIENT_NS"
# to $dir/$1
measure () {
  local name=$1 address=$2 rtt rate b0 b1 f0 f1 client
  rtt=$("$build/tools/elbus" "$address" benchmark -i "$rt_iters" |
        awk '$1 == "rpc.call" { printf "%.1f", 1e6 / $2 }')
  f0=$(frames)
  b0=$(cpu_ticks "$pid")
  # the client's user+system seconds, as bash's time keyword measures them
  TIMEFORMAT='%U %S'
  { time "$build/tools/elbus" "$address" benchmark -i "$iters" --window 4096 \
      > "$dir/out" 2>/dev/null; } 2> "$dir/time"
  client=$(awk '{ print $1 + $2 }' "$dir/time")
  b1=$(cpu_ticks "$pid")
  f1=$(frames)
  rate=$(awk '$1 == "send+recv.qos.no" { print $2 }' "$dir/out")
  awk -v rtt="$rtt" -v rate="$rate" -v b="$((b1 - b0))" -v c="$client" -v f="$((f1 - f0))" \
      -v hz="$hz" 'BEGIN { printf "%s %s %.0f %.0f\n", rtt, rate, b * 1e9 / hz / f, c * 1e9 / f }' \
      >> "$dir/$name"
}

for round in $(seq "$rounds"); do
  measure unix "$unix"
  measure tcp "$tcp"
  measure ws "$ws"
  echo "round $round done" >&2
done

col () {
  cut -d' ' -f"$2" "$dir/$1" | median
}

printf '%-34s %12s %12s %12s\n' "$rounds round(s), medians" UNIX TCP WebSocket
printf '%-34s %12s %12s %12s\n' "rpc.call round trip, µs" "$(col unix 1)" "$(col tcp 1)" "$(col ws 1)"
printf '%-34s %12s %12s %12s\n' "send+recv.qos.no, msgs/s" "$(col unix 2)" "$(col tcp 2)" "$(col ws 2)"
printf '%-34s %12s %12s %12s\n' "elbusd CPU per frame, ns" "$(col unix 3)" "$(col tcp 3)" "$(col ws 3)"
printf '%-34s %12s %12s %12s\n' "client CPU per frame, ns" "$(col unix 4)" "$(col tcp 4)" "$(col ws 4)"
awk -v bt="$(col tcp 3)" -v bw="$(col ws 3)" -v ct="$(col tcp 4)" -v cw="$(col ws 4)" \
    'BEGIN { printf "WebSocket over TCP, per frame: elbusd %+.0f ns (%.2fx), client %+.0f ns (%.2fx)\n",
             bw - bt, bw / bt, cw - ct, cw / ct }'
