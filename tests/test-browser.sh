#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bindings/js/elbus.js in a real browser: headless chromium opens
# bindings/js/test-page.html against an elbusd serving ws:// on a free
# loopback port. The page calls ".broker test" (and an unknown method),
# receives a publication from the elbus CLI and answers "elbus rpc call";
# its publication handler throws on a MessagePack payload, after which the
# next publication must still arrive and the page still answer RPC calls
# (one of its methods throws: the caller gets -32603). The page reports
# on the bus (test/report), which "elbus listen" records.
# Exit 77 (skipped) only when no chromium is installed.

: "${ELBUSD:?}" "${ELBUS_CLI:?}" "${G_TEST_SRCDIR:?}"
jsdir=${1:-$G_TEST_SRCDIR/../bindings/js}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
    echo "1..0 # SKIP chromium is not installed (build-aux/install-deps installs it)"
    exit 77
fi

dir=$(mktemp -d)
pids=()
cleanup()
{
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

echo "1..9"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$dir/elbusd.sock
"$ELBUSD" -B "$sock" -B "ws://127.0.0.1:$port/elbus" 2> "$dir/elbusd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

"$ELBUS_CLI" -s -n test.listener "$sock" listen -t 'test/report' > "$dir/listen.out" 2>&1 &
pids+=($!)
sleep 0.5

url="file://$(realpath "$jsdir")/test-page.html?url=ws://127.0.0.1:$port/elbus&name=web.test"
"$chromium" --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
    --user-data-dir="$dir/chromium" --remote-debugging-port=0 "$url" \
    > "$dir/chromium.log" 2>&1 &
pids+=($!)

# waits up to 30 s for a line matching $1 in what the listener printed
wait_for()
{
    for _ in $(seq 300); do
        grep -q -- "$1" "$dir/listen.out" && return 0
        sleep 0.1
    done
    return 1
}

n=0
check()
{
    n=$((n + 1))
    if "$@"; then
        echo "ok $n - $*"
    else
        echo "not ok $n - $*"
        failed=1
    fi
}

failed=0
check wait_for "ready"
check wait_for 'broker test answered {"ok":true}'
check wait_for "unknown method failed with -32601"
"$ELBUS_CLI" -s "$sock" publish test/in "from C" > /dev/null
check wait_for "received from C from cli"
# answers "elbus rpc call web.test METHOD ARGS..." as $1 expects
check_call()
{
    local want=$1 got
    shift
    got=$(LC_ALL=C "$ELBUS_CLI" -s "$sock" rpc call web.test "$@" 2>&1)
    n=$((n + 1))
    if [ "$got" = "$want" ]; then
        echo "ok $n - elbus rpc call web.test $* answered $got"
    else
        echo "not ok $n - elbus rpc call web.test $* answered: $got"
        failed=1
    fi
}

check_call '"Hello, world"' greet name=world
# {"k": 255} in MessagePack, not UTF-8 (0xcc 0xff)
printf '\x81\xa1k\xcc\xff' | "$ELBUS_CLI" -s "$sock" publish test/bin > /dev/null
check wait_for 'binary payload as text: 5 chars, as MessagePack: {"k":255}'
"$ELBUS_CLI" -s "$sock" publish test/in "after the throw" > /dev/null
check wait_for "received after the throw from cli"
check_call '"Hello, again"' greet name=again
check_call 'elbus: RPC error -32603: a method that throws' fail

if [ "$failed" != 0 ]; then
    echo "# listener:"; sed 's/^/# /' "$dir/listen.out"
    echo "# elbusd:"; sed 's/^/# /' "$dir/elbusd.log"
    echo "# chromium:"; tail -20 "$dir/chromium.log" | sed 's/^/# /'
fi
exit "$failed"
