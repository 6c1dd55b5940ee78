# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# TAP for the shell tests (test-completion.sh, test-man.sh), sourced:
# ok, not_ok and tap_end, and help_options, the options a tool's GLib
# --help-all documents.

n=0
failed=0

ok()
{
    n=$((n + 1))
    echo "ok $n - $1"
}

# not_ok DESCRIPTION [DETAIL...]
not_ok()
{
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    printf '%s\n' "$@" | sed 's/^/#   /'
}

# The plan, last; the status of the whole test.
tap_end()
{
    echo "1..$n"
    ((failed == 0)) || echo "# $failed failed"
    ((failed == 0))
}

# help_options COMMAND...: the options "COMMAND... --help-all" lists, one
# a line, each once, as GLib prints them: "  -k, --kind=KIND   ..." or
# "  --stats   ..."
help_options()
{
    "$@" --help-all | grep -Eo '^ +(-[[:alnum:]], )?--[[:alnum:]-]+' | tr -s ' ,' '\n' |
        sed '/^$/d' | sort -u
}
