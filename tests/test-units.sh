#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The systemd units as "meson install" installs them (into a scratch
# DESTDIR): systemd-analyze verify finds nothing wrong with elbusd.service
# and elbusd.socket, systemd-analyze security --offline rates the service
# at most 2.0 (OK), the service runs as the user that sysusers.d/elbus.conf
# makes, and nothing in it would hide the peers' real uids and gids from
# the policy. Prints TAP; skips only when systemd-analyze is missing or the
# build installs no units.
#
#   test-units.sh BUILD_DIR

builddir=${1:?usage: test-units.sh BUILD_DIR}
max_exposure=2.0

# shellcheck source=tests/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

if ! command -v systemd-analyze >/dev/null; then
    echo "1..0 # SKIP systemd-analyze not found (Debian package systemd)"
    exit 0
fi

destdir=$(mktemp -d "${TMPDIR:-/tmp}/elbus-units-XXXXXX")
trap 'rm -rf "$destdir"' EXIT

if ! install_log=$(meson install -C "$builddir" --destdir "$destdir" --no-rebuild 2>&1); then
    not_ok "meson install --destdir" "$install_log"
    tap_end
    exit
fi

service=$(find "$destdir" -name elbusd.service -path '*/systemd/system/*' | head -n 1)
if [[ -z $service ]]; then
    echo "1..0 # SKIP no units installed (-Dsystemdsystemunitdir=no)"
    exit 0
fi
unitdir=${service%/*}
units=("$service")
[[ -e $unitdir/elbusd.socket ]] && units+=("$unitdir/elbusd.socket")

# what ExecStart= runs, as installed: it is in DESTDIR, not yet on this
# system, which is the one thing verify may say
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$service")
if [[ -x $destdir$exec_start ]]; then
    ok "ExecStart=$exec_start is installed"
else
    not_ok "ExecStart=$exec_start is installed" "not in $destdir"
fi

# the man pages of Documentation=, when they are installed
verify_args=(--man=no)
man_page=$(find "$destdir" -path '*/man1/elbusd.1' | head -n 1)
if [[ -n $man_page ]]; then
    verify_args=()
    export MANPATH=${man_page%/man1/*}
fi
verify_out=$(cd "$destdir" && systemd-analyze verify "${verify_args[@]}" "${units[@]}" 2>&1)
verify_rest=$(grep -v -F "Command $exec_start is not executable" <<<"$verify_out")
if [[ -z $verify_rest ]]; then
    ok "systemd-analyze verify ${units[*]##*/}"
else
    not_ok "systemd-analyze verify ${units[*]##*/}" "$verify_out"
fi

security_out=$(systemd-analyze security --offline=true --no-pager "$service" 2>&1)
exposure=$(sed -n 's/.*Overall exposure level for elbusd.service: \([0-9.]*\).*/\1/p' \
           <<<"$security_out")
if [[ -n $exposure ]] && awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    ok "systemd-analyze security: exposure $exposure <= $max_exposure"
else
    not_ok "systemd-analyze security: exposure ${exposure:-unknown} <= $max_exposure" \
        "$(grep -E '✗|Overall' <<<"$security_out")"
fi

# the user and the group: made by the installed sysusers.d file
user=$(sed -n 's/^User=//p' "$service")
sysusers=$(find "$destdir" -path '*/sysusers.d/elbus.conf' | head -n 1)
if [[ -z $user ]]; then
    not_ok "the service has a User=" "it would run as root"
elif [[ -z $sysusers ]]; then
    not_ok "sysusers.d/elbus.conf is installed"
elif ! grep -Eq "^u[[:space:]]+${user}[[:space:]]" "$sysusers"; then
    not_ok "sysusers.d/elbus.conf makes User=$user" "$(cat "$sysusers")"
else
    ok "sysusers.d/elbus.conf makes User=$user"
fi
if [[ -n $sysusers ]] && command -v systemd-sysusers >/dev/null; then
    mkdir -p "$destdir/etc"
    sysusers_out=$(systemd-sysusers --root="$destdir" --dry-run "$sysusers" 2>&1)
    if grep -q "Creating user '\?$user'\?" <<<"$sysusers_out"; then
        ok "systemd-sysusers reads sysusers.d/elbus.conf"
    else
        not_ok "systemd-sysusers reads sysusers.d/elbus.conf" "$sysusers_out"
    fi
fi
if [[ -e $unitdir/elbusd.socket ]]; then
    group=$(sed -n 's/^SocketGroup=//p' "$unitdir/elbusd.socket")
    mode=$(sed -n 's/^SocketMode=//p' "$unitdir/elbusd.socket")
    if [[ $group == "$user" && $mode == 0660 ]]; then
        ok "elbusd.socket: group $group may connect (mode $mode)"
    else
        not_ok "elbusd.socket: group $user may connect" "SocketGroup=$group SocketMode=$mode"
    fi
fi

# a user namespace would show the broker every peer as nobody
if grep -Eq '^PrivateUsers=(yes|true|1|self|identity)' "$service"; then
    not_ok "SO_PEERCRED sees the peers' real uids" "$(grep -E '^PrivateUsers=' "$service")"
else
    ok "SO_PEERCRED sees the peers' real uids (no PrivateUsers=)"
fi

tap_end
