#!/usr/bin/env bash
# test_chat.sh NIBBLE MODEL TMPDIR: `nibble chat` through a pipe (the second turn prefills only
# its own tokens, /save and /load round trip, /clear, the full-context policy) and under a
# pseudo-terminal in tmux (Ctrl-C stops a reply and the session goes on; skipped without tmux).
set -u
NIB=$1 MODEL=$2 T=$3
mkdir -p "$T"
passes=0 fails=0
ok() { passes=$((passes + 1)); echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
novalid() { check "$1: no Vulkan validation message" bash -c "! grep -q '^vulkan' '$2'"; }
# the Nth "[prefill P tokens (C cached)" line of a log: "P C"
prefill() { sed -n 's/^\[prefill \([0-9]*\) tokens (\([0-9]*\) cached).*/\1 \2/p' "$1" | sed -n "$2p"; }
ntok() { "$NIB" tokenize -m "$MODEL" "$1" | wc -w; }

# ---- two turns through a pipe ----
printf 'And God said\nAnd then?\n/save %s\n/clear\nAnd God said\n' "$T/chat.txt" |
    "$NIB" chat -m "$MODEL" --temp 0 -n 16 >"$T/out1" 2>"$T/err1"
check "a piped session ends at the end of input with status 0" [ $? = 0 ]
read -r P1 C1 <<<"$(prefill "$T/err1" 1)"
read -r P2 C2 <<<"$(prefill "$T/err1" 2)"
read -r P3 C3 <<<"$(prefill "$T/err1" 3)"
FIRST=$(ntok $'<|turn>user\nAnd God said<turn|>\n<|turn>model\n')
NEW=$(($(ntok $'<turn|>\n<|turn>user\nAnd then?<turn|>\n<|turn>model\n') - 1)) # no <bos>
check "turn 1 prefills the whole prompt ($P1 = $FIRST tokens, 0 cached)" [ "$P1" = "$FIRST" -a "$C1" = 0 ]
# the reply was cut at -n 16: its last token goes in with the next turn
check "turn 2 prefills only the new turn ($P2 = 1 + $NEW tokens, $C2 = $P1 + 15 cached)" \
    [ "$P2" = $((NEW + 1)) -a "$C2" = $((P1 + 15)) ]
check "after /clear the whole prompt again ($P3 tokens, $C3 cached)" [ "$P3" = "$P1" -a "$C3" = 0 ]
check "the same reply after /clear" [ "$(sed -n 1p "$T/out1")" = "$(sed -n 3p "$T/out1")" ]
novalid "pipe" "$T/err1"

# ---- /load replays a transcript; /save writes it back the same ----
printf '/load %s\n/save %s\nAmen\n' "$T/chat.txt" "$T/chat2.txt" |
    "$NIB" chat -m "$MODEL" --temp 0 -n 8 >"$T/out2" 2>"$T/err2"
check "/load then /save: the same transcript" cmp -s "$T/chat.txt" "$T/chat2.txt"
N=$(sed -n 's/^\[loaded 4 turns, read \([0-9]*\) tokens in.*/\1/p' "$T/err2")
read -r P4 C4 <<<"$(prefill "$T/err2" 1)"
check "after /load the next turn prefills only itself ($C4 cached = $N loaded)" \
    [ -n "$N" -a "$C4" = "$N" -a "$P4" -lt 20 ]
printf 'not a transcript' >"$T/junk.txt"
printf '/load %s\n/load %s/none\n/save %s/no/such/dir/x\nAmen\n' "$T/junk.txt" "$T" "$T" |
    "$NIB" chat -m "$MODEL" --temp 0 -n 4 >/dev/null 2>"$T/err3"
check "a bad /load or /save says why and the session goes on" \
    [ $? = 0 -a "$(grep -c '^nibble chat: /\(load\|save\)' "$T/err3")" = 3 \
      -a "$(grep -c '^\[prefill' "$T/err3")" = 1 ]

# ---- the context fills: the oldest turns go, the system prompt stays ----
printf 'And God said\nAnd then?\nWhat more?\nAnd the end?\n' |
    "$NIB" chat -m "$MODEL" --temp 0 -n 24 -c 128 --system "Speak." >/dev/null 2>"$T/err4"
check "a full context drops the oldest turns and goes on" \
    [ $? = 0 -a "$(grep -c '^\[context full: dropped the 2 oldest turns' "$T/err4")" -ge 1 \
      -a "$(grep -c '^\[prefill' "$T/err4")" = 4 ]
novalid "full context" "$T/err4"

# ---- a pseudo-terminal: Ctrl-C stops the reply, the session goes on ----
if ! command -v tmux >/dev/null; then
    echo "skip: Ctrl-C under a pseudo-terminal (tmux is not installed)"
else
    S=nibble-chat-test-$$
    export TMUX_TMPDIR=$T
    tmux new-session -d -s $S -x 200 -y 50 \
        "'$NIB' chat -m '$MODEL' --temp 0 -n 2000 2>'$T/err5'; echo EXIT=\$? >'$T/exit5'; sleep 60"
    wait_for() { # PATTERN SECONDS: until the pane shows it
        for _ in $(seq $((10 * $2))); do
            tmux capture-pane -p -t $S -S -100 | grep -q "$1" && return 0
            sleep 0.1
        done
        return 1
    }
    wait_for '^>' 120 && tmux send-keys -t $S 'And God said' Enter
    wait_for 'LORD' 120 && tmux send-keys -t $S C-c
    wait_for '^\[stopped\]' 30 || wait_for 'stopped' 1
    tmux send-keys -t $S 'Amen' Enter
    for _ in $(seq 300); do [ "$(grep -c '^\[prefill' "$T/err5" 2>/dev/null)" = 2 ] && break; sleep 0.1; done
    tmux send-keys -t $S C-c
    tmux send-keys -t $S C-d
    for _ in $(seq 300); do [ -s "$T/exit5" ] && break; sleep 0.1; done
    tmux capture-pane -p -t $S -S -100 >"$T/pane5"
    tmux kill-session -t $S
    read -r P6 C6 <<<"$(prefill "$T/err5" 2)"
    R6=$(sed -n 's/^\[prefill.*reply \([0-9]*\) tokens.*/\1/p' "$T/err5" | head -1)
    check "Ctrl-C stops a reply (after ${R6:-?} of 2000 tokens)" \
        [ "$(grep -c '^\[stopped\]' "$T/err5")" -ge 1 -a -n "$R6" ] && [ "${R6:-2000}" -lt 2000 ]
    check "the session goes on after Ctrl-C, the cache kept ($C6 cached)" [ "${C6:-0}" -gt 0 ]
    check "Ctrl-C at the prompt does not end it; Ctrl-D does (status 0)" \
        [ "$(cat "$T/exit5")" = EXIT=0 ] && grep -q 'Ctrl-D or /quit' "$T/err5"
    novalid "pty" "$T/err5"
fi

echo "$passes passed, $fails failed"
[ $fails = 0 ]
