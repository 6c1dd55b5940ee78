#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Compares two builds side by side, in turns (A B A B ...), so that a
# shared machine's drift hits both alike: `elbus benchmark`'s stages and
# elbus-bench-flood's frames per second, each build with its own elbusd,
# elbus and elbus-bench-flood, no idle clients. Prints the median of each
# figure per build and the ratio NEW/OLD (above 1: NEW is faster).
#
#   tests/bench/scale-compare.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [ITERATIONS] [FLOOD_FRAMES]
#
# e.g. tests/bench/scale-compare.sh /tmp/old/build build 5
set -euo pipefail

old=${1:?usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [ITERATIONS] [FLOOD_FRAMES]}
new=${2:?usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [ITERATIONS] [FLOOD_FRAMES]}
rounds=${3:-5}
iterations=${4:-20000}
frames=${5:-1000000}

tmp=$(mktemp -d)
daemon=
cleanup () {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# one round of one build: "stage value" lines into $tmp/$label.$round
run_build () {
  local label=$1 dir=$2 round=$3
  local sock="$tmp/elbusd.sock" out="$tmp/$1.$3"

  rm -f "$sock"
  "$dir/tools/elbusd" -B "$sock" >/dev/null 2>&1 &
  daemon=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  # a run that fails (a busy machine, a timeout) leaves its figures out
  { "$dir/tools/elbus" "$sock" benchmark -i "$iterations" 2>/dev/null || echo "$label round $round: elbus benchmark failed" >&2; } |
    awk '$2 ~ /^[0-9]+$/ { print $1, $2 } /round trip/ { print "round-trip-us", $(NF-5) }' > "$out"
  kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
  { "$dir/tests/bench/elbus-bench-flood" --elbusd "$dir/tools/elbusd" -n "$frames" 2>/dev/null || echo "$label round $round: elbus-bench-flood failed" >&2; } |
    awk '/^delivered:/ { print "flood-frames/s", $7 } /^broker CPU:/ { print "flood-broker-us/frame", $9 }' >> "$out"
}

for round in $(seq "$rounds"); do
  run_build old "$old" "$round"
  run_build new "$new" "$round"
done

median () {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

printf '%-26s %14s %14s %8s\n' figure old new new/old
for figure in $(awk '{ print $1 }' "$tmp/old.1"); do
  o=$(cat "$tmp"/old.* | awk -v f="$figure" '$1 == f { print $2 }' | median)
  n=$(cat "$tmp"/new.* | awk -v f="$figure" '$1 == f { print $2 }' | median)
  # for times, smaller is better: the ratio says how much faster NEW is
  case $figure in
    *-us|*us/frame) ratio=$(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.2f", o / n }') ;;
    *) ratio=$(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.2f", n / o }') ;;
  esac
  printf '%-26s %14s %14s %8s\n' "$figure" "$o" "$n" "$ratio"
done
echo "($rounds rounds each, in turns; medians; the ratio is NEW's speed over OLD's)"
