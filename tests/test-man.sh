#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The man pages in docs/man/ against the built tools ($ELBUSD, $ELBUS_CLI,
# $ELBUS_MONITOR): every option a tool lists in its --help-all (for elbus,
# also in each command's --help-all) is documented in the option sections
# of its page, and every option documented there is one the tool lists, so
# that the pages cannot drift from the tools. Prints TAP.
#
# The pages are read loosely: the roff escapes \- and \f. are undone. The
# option sections are OPTIONS, COMMANDS and FILTERS: an option is
# documented there when it heads an entry (the tag line of a .TP), and
# each option they mention anywhere, or SYNOPSIS does, must be accepted.

: "${ELBUSD:?}" "${ELBUS_CLI:?}" "${ELBUS_MONITOR:?}" "${G_TEST_SRCDIR:?}"
mandir=${1:-$G_TEST_SRCDIR/../docs/man}
# the tools' --help untranslated, as parsed below
export LC_ALL=C

# shellcheck source=tests/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

# options_in: the options (-x, --long-name) in the text on standard input,
# one a line, each once
options_in()
{
    grep -oP '(?<![[:alnum:]-])(-[[:alpha:]]|--[[:alpha:]][[:alnum:]-]*[[:alnum:]])(?![[:alnum:]-])' |
        sort -u
}

# page_options PAGE SECTION-REGEX [tags]: the options in the sections of
# PAGE whose names match SECTION-REGEX, or with "tags" only those in the
# tag lines of their .TP entries, the roff escapes undone
page_options()
{
    awk -v want="^($2)\$" -v tags_only="${3:-}" '
        /^[.'\'']\\"/ { next }
        /^\.SH / {
            name = substr($0, 5)
            gsub(/"/, "", name)
            on = name ~ want
            next
        }
        !on { next }
        /^\.TP/ { tag = 1; next }
        # a tag line, and the lines it continues onto with a final "\"
        tag { print; tag = /\\$/; next }
        !tags_only
    ' "$1" |
        sed -E 's/\\-/-/g; s/\\f(\[[^]]*\]|\(..|.)//g; s/\\[&c%]//g' |
        options_in
}

# check TOOL-NAME PAGE TOOL-OPTIONS: both directions, one TAP line each
check()
{
    local tool=$1 page=$2 options=$3 documented declared missing unknown
    local page_name=${page##*/}

    if [[ ! -r $page ]]; then
        not_ok "$tool: its man page $page_name exists" "not found: $page"
        return
    fi
    if [[ -z $options ]]; then
        not_ok "$tool: --help-all lists options" "no options parsed from its --help-all"
        return
    fi
    documented=$(page_options "$page" 'OPTIONS|COMMANDS|FILTERS' tags)
    declared=$(page_options "$page" 'SYNOPSIS|OPTIONS|COMMANDS|FILTERS')

    missing=$(comm -23 <(echo "$options") <(echo "$documented") | paste -sd ' ')
    if [[ -z $missing ]]; then
        ok "$tool: every option of its --help-all is documented in $page_name"
    else
        not_ok "$tool: every option of its --help-all is documented in $page_name" \
            "missing from $page_name: $missing"
    fi

    # GLib accepts --help-all without listing it
    unknown=$(comm -13 <(printf '%s\n' "$options" --help-all | sort -u) <(echo "$declared") |
        paste -sd ' ')
    if [[ -z $unknown ]]; then
        ok "$tool: every option $page_name documents is one $tool accepts"
    else
        not_ok "$tool: every option $page_name documents is one $tool accepts" \
            "not accepted by $tool: $unknown"
    fi
}

check elbusd "$mandir/elbusd.1" "$(help_options "$ELBUSD")"
check elbus-monitor "$mandir/elbus-monitor.1" "$(help_options "$ELBUS_MONITOR")"
# elbus-bridge is built with libmosquitto only
if [[ -n ${ELBUS_BRIDGE:-} ]]; then
    check elbus-bridge "$mandir/elbus-bridge.1" "$(help_options "$ELBUS_BRIDGE")"
fi

# elbus: the global options and those of each command ("elbus PATH COMMAND
# --help-all"; PATH need not exist), the commands as "elbus --help" lists
# them
nowhere=/nonexistent/elbus-test-man.sock
commands=$("$ELBUS_CLI" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]\+\) .*/\1/p' | sort -u)
elbus_options=$(
    help_options "$ELBUS_CLI"
    for command in $commands; do
        help_options "$ELBUS_CLI" "$nowhere" "$command"
    done
)
if [[ -z $commands ]]; then
    not_ok "elbus: --help lists commands" "no commands parsed from elbus --help"
fi
check elbus "$mandir/elbus.1" "$(sort -u <<<"$elbus_options")"

tap_end
