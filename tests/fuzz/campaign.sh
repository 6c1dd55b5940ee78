#!/bin/sh
# SPDX-License-Identifier: MIT
# A fuzzing campaign: runs every libFuzzer target in turn for SECONDS
# (default 600) each, at nice 19 and one job at a time (the targets are
# single-threaded), from its seed corpus and dictionary, minimises the seed
# corpus together with what the run found (-merge=1: the hand-made seeds,
# then only the inputs that add coverage, into tests/fuzz/corpus/TARGET),
# and prints per target the executions,
# exec/s, coverage (cov: edges, ft: features), peak RSS and findings
# (crash-, leak-, timeout- and oom- files, kept in the work directory).
#
#   tests/fuzz/campaign.sh [SECONDS] [TARGET...]
#
# Needs the fuzz build: CC=clang BUILD_DIR=build-fuzz ./build-aux/build
# -Dfuzzing=true -Dintrospection=disabled -Dvapi=false -Ddocs=false -Dman=false
# ($BUILD_DIR, default build-fuzz). Logs and findings go to
# $BUILD_DIR/campaign/TARGET/. A finding is reproduced with
# `build-fuzz/tests/fuzz/fuzz-TARGET FILE`; commit it under
# tests/fuzz/regressions/TARGET/ and the normal suite replays it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build=$top/$build ;; esac

seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-broker codec msgpack fifo config params monitor-event monitor-filter ws}

printf '%-15s %8s %12s %8s %7s %7s %8s %9s\n' \
  target seconds executions exec/s cov ft rss_mb findings
for t in $targets; do
  exe=$build/tests/fuzz/fuzz-$t
  work=$build/campaign/$t
  seeds=$here/corpus/$t
  if [ ! -x "$exe" ]; then
    echo "campaign: $exe is not built" >&2
    exit 1
  fi
  mkdir -p "$work/corpus" "$seeds"
  dict=
  [ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict

  nice -n 19 "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" $dict \
    "$work/corpus" "$seeds" > "$work/log" 2>&1 || true
  # the seeds and what the run found, minimised (-merge=1): the hand-made
  # seeds (named, not hashes) stay, then only inputs that add coverage
  rm -rf "$work/seeds"
  mkdir -p "$work/seeds"
  ls "$seeds" | grep -Ev '^[0-9a-f]{40}$' | while read -r f; do
    cp "$seeds/$f" "$work/seeds/"
  done
  if nice -n 19 "$exe" -merge=1 $dict "$work/seeds" "$seeds" "$work/corpus" \
       > "$work/merge.log" 2>&1; then
    find "$seeds" -maxdepth 1 -type f -delete
    cp "$work/seeds/"* "$seeds/"
  fi

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log")
  last=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  findings=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' \
             -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  printf '%-15s %8s %12s %8s %7s %7s %8s %9s\n' \
    "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${rss:-?}" "$findings"
done
