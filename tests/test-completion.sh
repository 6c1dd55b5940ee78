#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The bash completions in data/completions/ (the directory is the first
# argument), against the built tools ($ELBUSD, $ELBUS_CLI, $ELBUS_MONITOR):
# what they offer on real command lines, sourced on their own and loaded on
# demand by bash-completion (when it is installed), and that the options
# and values they offer are exactly those the tools document and accept, so
# that they cannot drift from the tools. Prints TAP.

# shellcheck source=tests/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

compdir=${1:?usage: test-completion.sh DATA/COMPLETIONS}
: "${ELBUSD:?}" "${ELBUS_CLI:?}" "${ELBUS_MONITOR:?}"
# the tools' messages untranslated, as parsed below
export LC_ALL=C

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# candidates for the file arguments, completed relative to here
mkdir -p "$tmp/files/sub"
cd "$tmp/files" || exit 1
touch a.sock b.socket c.ipc d.txt

# complete_line LINE: what TAB at the end of LINE offers, one per line.
# LINE is split into COMP_WORDS as readline does it: at blanks, and at the
# word breaks = and :, each kept as a word of its own. Without a compspec
# for the command, bash runs the default one (bash-completion's on-demand
# loader) and, when that returns 124, tries again.
complete_line()
{
    local line=$1 word='' c i spec status
    COMP_WORDS=()
    COMPREPLY=()
    for ((i = 0; i < ${#line}; i++)); do
        c=${line:i:1}
        case $c in
            ' ')
                [[ $word ]] && COMP_WORDS+=("$word")
                word=''
                ;;
            = | :)
                [[ $word ]] && COMP_WORDS+=("$word")
                COMP_WORDS+=("$c")
                word=''
                ;;
            *) word+=$c ;;
        esac
    done
    if [[ $word ]]; then
        COMP_WORDS+=("$word")
    elif [[ $line == *' ' ]]; then
        COMP_WORDS+=('')
    fi
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}

    for spec in "-- ${COMP_WORDS[0]}" -D "-- ${COMP_WORDS[0]}"; do
        # shellcheck disable=SC2086 # spec is "-D" or "-- COMMAND"
        spec=$(complete -p $spec 2>/dev/null) || continue
        [[ $spec == *' -F '* ]] || return
        spec=${spec#* -F }
        COMPREPLY=()
        "${spec%% *}" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" \
            "${COMP_WORDS[COMP_CWORD - 1]}"
        status=$?
        # only the default completion's 124 asks for another round
        [[ $status == 124 ]] || break
    done
    printf '%s\n' "${COMPREPLY[@]}"
}

# compare DESCRIPTION GOT WANT [WHAT-GOT WHAT-WANT]: two lists, one item a
# line, hold the same items
compare()
{
    local got want extra missing
    got=$(sort -u <<<"$2" | sed '/^$/d')
    want=$(sort -u <<<"$3" | sed '/^$/d')
    if [[ $got == "$want" ]]; then
        ok "$1"
        return
    fi
    extra=$(comm -23 <(echo "$got") <(echo "$want") | sed '/^$/d' | tr '\n' ' ')
    missing=$(comm -13 <(echo "$got") <(echo "$want") | sed '/^$/d' | tr '\n' ' ')
    not_ok "$1" "${4:-offered}, not ${5:-expected}: ${extra:-none}" \
        "${5:-expected}, not ${4:-offered}: ${missing:-none}"
}

# expect LINE [WORD...]: TAB at the end of LINE offers exactly the WORDs
expect()
{
    local line=$1
    shift
    compare "[$mode] '$line'" "$(complete_line "$line")" "$(printf '%s\n' "$@")"
}

# expect_help_options LINE TOOL [ARG...]: TAB at the end of LINE (ending in
# "-") offers exactly the options "TOOL ARG... --help-all" documents
expect_help_options()
{
    local line=$1 tool
    shift
    tool="${1##*/}${2:+ ${*:2}}"
    compare "[$mode] '$line' offers the options of '$tool --help-all'" \
        "$(complete_line "$line")" "$(help_options "$@")" "offered" "in --help-all"
}

# accepted DESCRIPTION STATUS-FOR-A-BAD-ONE WORD... -- COMMAND...: COMMAND
# with each WORD for the "{}" in it does not exit with that status
accepted()
{
    local description=$1 bad=$2 words=() word arg args refused=()
    shift 2
    while [[ $1 != -- ]]; do
        words+=("$1")
        shift
    done
    shift
    for word in "${words[@]}"; do
        args=()
        for arg in "$@"; do
            args+=("${arg//\{\}/$word}")
        done
        "${args[@]}" >/dev/null 2>&1
        [[ $? == "$bad" ]] && refused+=("$word")
    done
    if ((${#refused[@]} == 0 && ${#words[@]} > 0)); then
        ok "$description"
    else
        not_ok "$description" "refused: ${refused[*]:-none offered}"
    fi
}

run_cases()
{
    local sock=/tmp/x.sock commands command
    # a broker address that does not exist: the tools get as far as connecting
    local nowhere=$tmp/nowhere.sock

    # elbusd: options only, files and socket paths for theirs
    expect_help_options 'elbusd -' "$ELBUSD"
    compare "[$mode] 'elbusd ' offers its options" "$(complete_line 'elbusd ')" \
        "$(complete_line 'elbusd -')"
    expect 'elbusd --ver' --verbose --version
    expect "elbusd --config $tmp/files/" "$tmp"/files/{a.sock,b.socket,c.ipc,d.txt,sub}
    expect "elbusd --config=$tmp/files/d" "$tmp/files/d.txt"
    expect 'elbusd -v -P d' d.txt
    expect 'elbusd --tls-certificate d' d.txt
    expect 'elbusd --tls-certificate=d' d.txt
    expect 'elbusd --tls-key d' d.txt
    expect 'elbusd --tls-' --tls-certificate --tls-key
    expect 'elbusd -B ' a.sock b.socket c.ipc sub
    expect 'elbusd --bind=a' a.sock
    expect 'elbusd --max-clients '

    # elbus: PATH, global options, COMMAND, its options and arguments
    expect_help_options 'elbus -' "$ELBUS_CLI"
    expect_help_options "elbus $sock -" "$ELBUS_CLI"
    expect 'elbus ' a.sock b.socket c.ipc sub
    expect 'elbus -v ' a.sock b.socket c.ipc sub
    expect 'elbus -n '
    expect 'elbus --timeout='
    # WebSocket URLs and HOST:PORT: the schemes offered, then one PATH
    expect 'elbus w' ws:// wss://
    expect 'elbus wss' wss://
    expect 'elbus ws://127.0.0.1:8080/elbus p' publish
    expect 'elbus 127.0.0.1:7777 --timeout 2 rpc c' call call0
    commands=$(complete_line "elbus $sock ")
    compare "[$mode] 'elbus $sock ' offers the commands of 'elbus --help'" "$commands" \
        "$("$ELBUS_CLI" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]\+\) .*/\1/p')"
    expect "elbus -n me --timeout=2 $sock --buf-size 64 p" publish
    for command in $commands; do
        expect_help_options "elbus $sock $command -" "$ELBUS_CLI" "$sock" "$command"
    done
    # shellcheck disable=SC2086 # one command a word
    accepted "[$mode] the commands offered are elbus commands" 1 $commands -- \
        "$ELBUS_CLI" "$nowhere" {} --help
    compare "[$mode] 'elbus $sock broker ' offers the methods of its --help" \
        "$(complete_line "elbus $sock broker ")" \
        "$("$ELBUS_CLI" "$sock" broker --help | sed -n 's/.* broker \([^ ]*|[^ ]*\) .*/\1/p' | tr '|' '\n')"
    expect "elbus $sock broker client.list "
    expect "elbus $sock broker i" info
    compare "[$mode] 'elbus $sock rpc ' offers the subcommands of its --help" \
        "$(complete_line "elbus $sock rpc ")" \
        "$("$ELBUS_CLI" "$sock" rpc --help | sed -n 's/.* rpc \([^ ]*|[^ ]*\) .*/\1/p' | tr '|' '\n')"
    expect "elbus $sock rpc call" call call0
    expect "elbus $sock rpc listen -t "
    expect "elbus $sock rpc call .broker test -" -h --help
    expect "elbus $sock listen --topic=a/b -" -h --help -t --topic
    expect "elbus $sock benchmark -w 2 --iters "

    # elbus-monitor: PATH, options, --kind and --color values, --pcap files
    expect_help_options 'elbus-monitor -' "$ELBUS_MONITOR"
    expect 'elbus-monitor ' a.sock b.socket c.ipc sub
    expect 'elbus-monitor --count 5 --json ' a.sock b.socket c.ipc sub
    expect 'elbus-monitor w' ws:// wss://
    compare "[$mode] 'elbus-monitor ws://h:1/e ' offers its options" \
        "$(complete_line 'elbus-monitor ws://h:1/e ')" "$(complete_line 'elbus-monitor -')"
    compare "[$mode] 'elbus-monitor $sock ' offers its options" \
        "$(complete_line "elbus-monitor $sock ")" "$(complete_line 'elbus-monitor -')"
    compare "[$mode] 'elbus-monitor --kind ' offers the kinds elbus-monitor knows" \
        "$(complete_line 'elbus-monitor --kind ')" \
        "$("$ELBUS_MONITOR" --kind bogus "$nowhere" 2>&1 | sed -n 's/.*(known: \(.*\))$/\1/p' | sed 's/, /\n/g')"
    # shellcheck disable=SC2046 # one kind a word
    accepted "[$mode] elbus-monitor accepts the kinds offered" 2 \
        $(complete_line 'elbus-monitor --kind ') -- "$ELBUS_MONITOR" --kind {} "$nowhere"
    expect 'elbus-monitor -k p' publish
    expect 'elbus-monitor --kind=unsub' unsubscribe
    expect 'elbus-monitor -k message,reg,u' message,reg,unreg message,reg,unsubscribe
    # shellcheck disable=SC2046 # one value a word
    accepted "[$mode] elbus-monitor accepts the --color values offered" 2 \
        $(complete_line 'elbus-monitor --color ') -- "$ELBUS_MONITOR" --color {} "$nowhere"
    expect 'elbus-monitor --color a' auto always
    expect 'elbus-monitor --pcap d' d.txt
    expect 'elbus-monitor --sender '

    # elbus-bridge (built with libmosquitto only): PATH, options, files
    if [[ -n ${ELBUS_BRIDGE:-} ]]; then
        expect_help_options 'elbus-bridge -' "$ELBUS_BRIDGE"
        expect 'elbus-bridge ' a.sock b.socket c.ipc sub
        expect 'elbus-bridge w' ws:// wss://
        expect 'elbus-bridge --mqtt h:1 wss://h:1/e --mqtt-qos ' 0 1 2
        compare "[$mode] 'elbus-bridge $sock ' offers its options" \
            "$(complete_line "elbus-bridge $sock ")" "$(complete_line 'elbus-bridge -')"
        expect 'elbus-bridge --mqtt h:1 --export a/# ' a.sock b.socket c.ipc sub
        expect 'elbus-bridge --mqtt-qos ' 0 1 2
        # shellcheck disable=SC2046 # one value a word
        accepted "[$mode] elbus-bridge accepts the --mqtt-qos values offered" 2 \
            $(complete_line 'elbus-bridge --mqtt-qos ') -- "$ELBUS_BRIDGE" --mqtt-qos {} \
            --mqtt 127.0.0.1:1 --export a "$nowhere" --version
        expect 'elbus-bridge --config d' d.txt
        expect 'elbus-bridge --tls-ca=d' d.txt
        expect 'elbus-bridge --mqtt '
        expect 'elbus-bridge --export '
    fi
}

completions=(elbusd elbus elbus-monitor)
[[ -n ${ELBUS_BRIDGE:-} ]] && completions+=(elbus-bridge)
for f in "${completions[@]}"; do
    if error=$(bash -n "$compdir/$f" 2>&1); then
        ok "bash -n $f"
    else
        not_ok "bash -n $f" "$error"
    fi
done

# sourced on their own, without bash-completion
(
    mode=plain
    for f in "${completions[@]}"; do
        # shellcheck source=/dev/null
        . "$compdir/$f"
    done
    run_cases
    echo "$n $failed" >"$tmp/counts"
)
read -r n failed <"$tmp/counts"

# bash-completion finding them by the command's name
bash_completion=/usr/share/bash-completion/bash_completion
if [[ -r $bash_completion ]]; then
    (
        mode=bash-completion
        mkdir "$tmp/user"
        ln -s "$compdir" "$tmp/user/completions"
        export BASH_COMPLETION_USER_DIR=$tmp/user
        # shellcheck source=/dev/null
        . "$bash_completion"
        run_cases
        echo "$n $failed" >"$tmp/counts"
    )
    read -r n failed <"$tmp/counts"
else
    n=$((n + 1))
    echo "ok $n # SKIP $bash_completion not found"
fi

tap_end
