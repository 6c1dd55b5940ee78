#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs an example against a private broker on a temporary socket, whose
# path is appended to the command line:
#
#   docs/examples/with-elbusd.sh python3 docs/examples/pubsub-rpc.py
#
# ELBUSD names the broker binary (default: elbusd from PATH).
set -eu
dir=$(mktemp -d "${TMPDIR:-/tmp}/elbus-example-XXXXXX")
sock="$dir/elbus.sock"
"${ELBUSD:-elbusd}" -B "$sock" &
pid=$!
trap 'kill "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; rm -rf "$dir"' EXIT
tries=0
while [ ! -S "$sock" ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "elbusd did not start listening on $sock" >&2
    exit 1
  fi
  sleep 0.05
done
"$@" "$sock"
