#!/usr/bin/env bash
# test_serve.sh NIBBLE MODEL TMPDIR: `nibble serve` on a loopback port (--port 0), driven by curl
# and jq, then by the official `openai` npm client under node (installed from the npm registry
# into TMPDIR/npm; skipped with a message when node, npm or the registry is not there).
#   server A (--parallel 4): chat and completions, streamed and not, usage, stop sequences, seeds,
#     the prompt cache on a second turn, the bad-request matrix, a load of 12 streaming clients x 3
#     (some leaving mid-stream) whose completed replies must equal the single-client greedy text;
#   server B (--parallel 1 --api-key): a fresh server's text for the second turn and the seeded
#     request, the API key, a client leaving mid-stream freeing the only slot.
# Every server must log no Vulkan validation message and exit 0 on SIGTERM.
# Exit: 0 all passed, 1 a check failed, 77 curl or jq missing (skip).
set -u
NIB=$1 MODEL=$2 T=$3
mkdir -p "$T"
for t in curl jq; do
    command -v $t >/dev/null || { echo "skip: $t is not installed"; exit 77; }
done
passes=0 fails=0
ok() { passes=$((passes + 1)); echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null; done' EXIT

# start NAME ARGS...: a server; sets PID, PORT, LOG
start() {
    LOG=$T/$1.log
    local name=$1; shift
    "$NIB" serve -m "$MODEL" --port 0 "$@" 2>"$LOG" &
    PID=$!
    PIDS+=($PID)
    PORT=
    for _ in $(seq 1200); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG")
        [ -n "$PORT" ] && break
        kill -0 $PID 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PORT" ] || { bad "server $name starts" "$(tail -3 "$LOG")"; exit 1; }
    ok "server $name starts ($(grep -o 'listening on .*' "$LOG"))"
}
# stop NAME: SIGTERM, exit 0, no validation message
stop() {
    kill -TERM $PID
    wait $PID
    local rc=$?
    check "server $1 exits 0 on SIGTERM (got $rc)" [ $rc = 0 ]
    check "server $1 logged no Vulkan validation message" \
        bash -c "! grep -q '^vulkan' '$LOG'"
}
# req METHOD PATH [JSON|@FILE] [curl args...]: the body in $T/body, the status in $ST
req() {
    local m=$1 p=$2; shift 2
    local d=()
    if [ $# -gt 0 ]; then d=(--data-binary "$1"); shift; fi
    ST=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H 'Content-Type: application/json' \
        "${d[@]}" "$@" "http://127.0.0.1:$PORT$p")
}
post() { req POST "$@"; }
jb() { jq -r "$1" "$T/body"; }
# an SSE stream's text: the concatenated deltas of $T/stream
sse_text() { sed -n 's/^data: \({.*\)/\1/p' "$T/stream" | jq -j '.choices[0] | (.delta.content // .text // "")'; }
healthy() { req GET /health; [ "$ST" = 200 ] && [ "$(jb .status)" = ok ]; }

start A --parallel 4
check "GET /health" healthy
req GET /v1/models
check "GET /v1/models names the model" [ "$(jb '.data[0].id')" = default ]

# ---- chat, streamed and not ----
CHAT='{"messages":[{"role":"user","content":"And God said"}],"max_tokens":24,"temperature":0'
post /v1/chat/completions "$CHAT}"
C1=$(jb '.choices[0].message.content')
check "chat: 200, text, finish_reason length" \
    [ "$ST" = 200 -a -n "$C1" -a "$(jb '.choices[0].finish_reason')" = length ]
post /tokenize "$(jq -n --arg c $'<|turn>user\nAnd God said<turn|>\n<|turn>model\n' \
    '{content: $c, add_special: true}')"
NP=$(jb '.tokens | length')
post /v1/chat/completions "$CHAT}"
check "chat usage: prompt $NP, completion 24, total, cached" \
    [ "$(jb '.usage.prompt_tokens')" = "$NP" -a "$(jb '.usage.completion_tokens')" = 24 \
      -a "$(jb '.usage.total_tokens')" = $((NP + 24)) \
      -a "$(jb '.usage.prompt_tokens_details.cached_tokens')" -ge 1 ]
check "chat: a repeated greedy request gives the same text" \
    [ "$(jb '.choices[0].message.content')" = "$C1" ]
post /v1/chat/completions "$CHAT"',"stream":true,"stream_options":{"include_usage":true}}' -N
cp "$T/body" "$T/stream"
check "chat stream: the deltas make the same text" [ "$(sse_text)" = "$C1" ]
check "chat stream: role first, finish_reason length, usage chunk, [DONE]" \
    [ "$(sed -n 's/^data: \({.*\)/\1/p' "$T/stream" | head -1 | jq -r '.choices[0].delta.role')" = assistant \
      -a "$(grep -c '"finish_reason":"length"' "$T/stream")" = 1 \
      -a "$(sed -n 's/^data: \({.*"usage".*\)/\1/p' "$T/stream" | jq -r .usage.completion_tokens)" = 24 \
      -a "$(grep '^data: ' "$T/stream" | tail -1)" = "data: [DONE]" ]

# ---- completions ----
COMP='{"prompt":"And God said","max_tokens":32,"temperature":0'
post /v1/completions "$COMP}"
T1=$(jb '.choices[0].text')
check "completions: 200, text_completion, 32 tokens" \
    [ "$ST" = 200 -a "$(jb .object)" = text_completion -a -n "$T1" \
      -a "$(jb .usage.completion_tokens)" = 32 ]
post /v1/completions "$COMP"',"stream":true}' -N
cp "$T/body" "$T/stream"
check "completions stream: the same text" [ "$(sse_text)" = "$T1" ]

# ---- stop sequences: cut before the first match, in a stream too ----
S=${T1:11:5}
post /v1/completions "$(jq -n --arg s "$S" '{prompt: "And God said", max_tokens: 32,
    temperature: 0, stop: ["zzzq", $s]}')"
check "stop '$S': the text up to it, finish_reason stop" \
    [ "$(jb '.choices[0].text')" = "${T1%%"$S"*}" -a "$(jb '.choices[0].finish_reason')" = stop ]
post /v1/completions "$(jq -n --arg s "$S" '{prompt: "And God said", max_tokens: 32,
    temperature: 0, stop: $s, stream: true}')" -N
cp "$T/body" "$T/stream"
check "stop in a stream: the same text" [ "$(sse_text)" = "${T1%%"$S"*}" ]

# ---- seeds ----
SEED='{"prompt":"In the beginning","max_tokens":24,"temperature":1.0,"top_k":0,"seed":1234}'
post /v1/completions "$SEED"
R1=$(jb '.choices[0].text')
post /v1/completions '{"prompt":"Then","max_tokens":5,"temperature":1.0,"seed":99}'
post /v1/completions "$SEED"
check "seed: the same seed repeats on a used slot" [ "$(jb '.choices[0].text')" = "$R1" ]

# ---- the prompt cache on a second turn ----
TURN1='[{"role":"user","content":"The LORD is my shepherd"}]'
post /v1/chat/completions "{\"messages\":$TURN1,\"max_tokens\":32,\"temperature\":0}"
A1=$(jb '.choices[0].message.content')
TURN2=$(jq -cn --argjson t "$TURN1" --arg a "$A1" \
    '$t + [{role: "assistant", content: $a}, {role: "user", content: "And then?"}]')
post /v1/chat/completions "{\"messages\":$TURN2,\"max_tokens\":32,\"temperature\":0}"
A2=$(jb '.choices[0].message.content')
CACHED=$(jb '.usage.prompt_tokens_details.cached_tokens') NP2=$(jb .usage.prompt_tokens)
check "second turn: $CACHED of $NP2 prompt tokens from the cache" [ "$CACHED" -gt $((NP2 / 2)) ]
# three other requests meanwhile take the other slots, not this conversation's
for p in "Then" "Now therefore" "Behold"; do
    post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$p\"}],\"max_tokens\":8}"
done
TURN3=$(jq -cn --argjson t "$TURN2" --arg a "$A2" \
    '$t + [{role: "assistant", content: $a}, {role: "user", content: "Amen"}]')
post /v1/chat/completions "{\"messages\":$TURN3,\"max_tokens\":8,\"temperature\":0}"
CACHED=$(jb '.usage.prompt_tokens_details.cached_tokens')
check "third turn after 3 other requests: $CACHED cached (> $NP2)" [ "$CACHED" -gt "$NP2" ]

# ---- bad requests: a JSON error each, the server healthy after them ----
expect() { # STATUS NAME PATH BODY [curl args]
    local want=$1 name=$2; shift 2
    post "$@"
    if [ "$ST" = "$want" ] && jq -e '(.error.message | type == "string") and
        (.error.type | type == "string") and .error.code == '"$want" "$T/body" >/dev/null; then
        ok "$name -> $want"
    else
        bad "$name -> $want" "got $ST $(head -c 200 "$T/body")"
    fi
}
U=/v1/chat/completions
expect 400 "malformed JSON" $U '{"messages":[{"role":"user","content":"hi"}'
expect 400 "not JSON" $U 'hello'
expect 400 "an empty body" $U ''
expect 400 "an array" $U '[1,2]'
expect 400 "nested 5000 deep" $U "$(printf '%.0s[' $(seq 5000))"
printf '{"messages":[{"role":"user","content":"\xff\xfe"}]}' >"$T/bad-utf8.json"
expect 400 "invalid UTF-8" $U @"$T/bad-utf8.json"
printf '{"prompt":"\xed\xa0\x80"}' >"$T/surrogate.json"
expect 400 "a UTF-8 surrogate" /v1/completions @"$T/surrogate.json"
head -c 5000000 /dev/zero | tr '\0' a >"$T/huge.txt"
expect 413 "a 5 MB body" $U @"$T/huge.txt"
expect 413 "a 5 MB chunked body" $U @"$T/huge.txt" -H 'Transfer-Encoding: chunked'
expect 400 "missing messages" $U '{}'
expect 400 "messages a string" $U '{"messages":"hi"}'
expect 400 "messages empty" $U '{"messages":[]}'
expect 400 "a message without role" $U '{"messages":[{"content":"hi"}]}'
expect 400 "an unknown role" $U '{"messages":[{"role":"wizard","content":"hi"}]}'
expect 400 "content a number" $U '{"messages":[{"role":"user","content":5}]}'
M='"messages":[{"role":"user","content":"hi"}]'
expect 400 "max_tokens a string" $U "{$M,\"max_tokens\":\"5\"}"
expect 400 "max_tokens 0" $U "{$M,\"max_tokens\":0}"
expect 400 "max_tokens 2.5" $U "{$M,\"max_tokens\":2.5}"
expect 400 "temperature a string" $U "{$M,\"temperature\":\"hot\"}"
expect 400 "temperature negative" $U "{$M,\"temperature\":-1}"
expect 400 "top_p 2" $U "{$M,\"top_p\":2}"
expect 400 "top_k -1" $U "{$M,\"top_k\":-1}"
expect 400 "seed 1.5" $U "{$M,\"seed\":1.5}"
expect 400 "stream a string" $U "{$M,\"stream\":\"yes\"}"
expect 400 "stop a number" $U "{$M,\"stop\":5}"
expect 400 "n 2" $U "{$M,\"n\":2}"
expect 400 "missing prompt" /v1/completions '{}'
expect 400 "prompt an object" /v1/completions '{"prompt":{}}'
expect 400 "a prompt longer than the context" /v1/completions \
    "$(jq -n --arg p "$(printf 'And God said %.0s' $(seq 1200))" '{prompt: $p}')"
expect 400 "tokenize without content" /tokenize '{}'
expect 400 "detokenize an unknown id" /detokenize '{"tokens":[99999999]}'
expect 400 "detokenize a string" /detokenize '{"tokens":["a"]}'
expect 404 "an unknown route" /v1/nothing '{}'
req GET /v1/chat/completions
check "GET on a POST route -> 405 with Allow" [ "$ST" = 405 -a "$(jb .error.code)" = 405 ]
post /v1/chat/completions "{$M,\"max_tokens\":2,\"frobnicate\":{\"x\":[1]},\"logit_bias\":null}"
check "unknown fields are ignored -> 200" [ "$ST" = 200 ]
# a body cut short: the client says 200 bytes, sends 20 and leaves
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n{"prompt":"And God' >&3
exec 3>&-
# a request line that is not HTTP
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'GARBAGE\r\n\r\n' >&3
exec 3>&-
check "healthy after the bad requests" healthy

# ---- load: NC streaming clients x NR requests on 4 slots, every fourth client leaving
# mid-stream on its second request (NB_SERVE_LOAD="16 20" for the issue's larger run) ----
read -r NC NR <<<"${NB_SERVE_LOAD:-12 3}"
PROMPTS=("And God said" "In the beginning" "Blessed are the")
for i in 0 1 2; do
    post /v1/completions "$(jq -n --arg p "${PROMPTS[$i]}" '{prompt: $p, max_tokens: 40, temperature: 0}')"
    jb '.choices[0].text' >"$T/ref$i"
done
RSS0=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
client() { # N: NR requests, the second cut after 0.3 s by clients 0, 4, 8, ...
    for r in $(seq 0 $((NR - 1))); do
        local i=$((($1 + r) % 3)) cut=()
        [ $r = 1 ] && [ $(($1 % 4)) = 0 ] && cut=(--max-time 0.3)
        curl -sN "${cut[@]}" -o "$T/load-$1-$r" -H 'Content-Type: application/json' \
            --data-binary "$(jq -n --arg p "${PROMPTS[$i]}" \
            '{prompt: $p, max_tokens: 40, temperature: 0, stream: true}')" \
            "http://127.0.0.1:$PORT/v1/completions"
        echo $i >"$T/load-$1-$r.prompt"
    done
}
t0=$(date +%s)
for c in $(seq 0 $((NC - 1))); do client $c & done
wait $(jobs -p | grep -v "^$PID$") 2>/dev/null
t1=$(date +%s)
whole=0 same=0 cut=0
for c in $(seq 0 $((NC - 1))); do
    for r in $(seq 0 $((NR - 1))); do
        f=$T/load-$c-$r
        if [ -f "$f" ] && grep -q '^data: \[DONE\]' "$f"; then
            whole=$((whole + 1))
            cp "$f" "$T/stream"
            [ "$(sse_text)" = "$(cat "$T/ref$(cat "$f.prompt")")" ] && same=$((same + 1))
        else
            cut=$((cut + 1))
        fi
        rm -f "$f" "$f.prompt"
    done
done
check "load: $whole whole streams, $cut cut, every whole one the greedy text ($same)" \
    [ $whole -ge $((NC * NR - (NC + 3) / 4)) -a $same = $whole ]
check "healthy after the load" healthy
RSS1=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "note: load of $NC x $NR took $((t1 - t0)) s; server A resident memory ${RSS0} kB before, ${RSS1} kB after"
stop A

# ---- server B: fresh, one slot, an API key ----
start B --parallel 1 --api-key sekrit
post /v1/chat/completions "{\"messages\":$TURN2,\"max_tokens\":32,\"temperature\":0}"
check "no API key -> 401" [ "$ST" = 401 -a "$(jb .error.type)" = authentication_error ]
post /v1/chat/completions "{\"messages\":$TURN2,\"max_tokens\":32,\"temperature\":0}" \
    -H 'Authorization: Bearer wrong'
check "a wrong API key -> 401" [ "$ST" = 401 ]
check "/health needs no key" healthy
K=(-H 'Authorization: Bearer sekrit')
post /v1/chat/completions "{\"messages\":$TURN2,\"max_tokens\":32,\"temperature\":0}" "${K[@]}"
check "second turn on a fresh server: nothing cached, the same text as with the cache" \
    [ "$ST" = 200 -a "$(jb .usage.prompt_tokens_details.cached_tokens)" = 0 \
      -a "$(jb '.choices[0].message.content')" = "$A2" ]
post /v1/completions "$SEED" "${K[@]}"
check "seed: the same text on a fresh server" [ "$(jb '.choices[0].text')" = "$R1" ]
# a client leaving mid-stream frees the only slot at once
curl -sN --max-time 1 -o /dev/null "${K[@]}" --data-binary \
    '{"prompt":"And God said","max_tokens":1000,"temperature":0,"stream":true}' \
    "http://127.0.0.1:$PORT/v1/completions"
post /v1/completions '{"prompt":"In the beginning","max_tokens":4,"temperature":0}' "${K[@]}"
check "after a client left mid-stream the slot serves the next request" [ "$ST" = 200 ]
N=$(sed -n 's/.*generated \([0-9]*\), cancelled.*/\1/p' "$LOG" | head -1)
check "the stream that lost its client stopped early (after ${N:-?} of 1000 tokens)" \
    [ -n "$N" ] && [ "$N" -lt 1000 ]

# and so does a client that leaves before a non-streaming reply is whole
curl -s --max-time 1 -o /dev/null "${K[@]}" --data-binary \
    '{"prompt":"Blessed are the","max_tokens":1000,"temperature":0}' \
    "http://127.0.0.1:$PORT/v1/completions"
post /v1/completions '{"prompt":"In the beginning","max_tokens":4,"temperature":0}' "${K[@]}"
N=$(sed -n 's/.*generated \([0-9]*\), cancelled.*/\1/p' "$LOG" | sed -n 2p)
check "a non-streaming request that lost its client stopped early (after ${N:-?} of 1000)" \
    [ "$ST" = 200 -a -n "$N" ] && [ "$N" -lt 1000 ]

# ---- the openai npm client ----
NPM=$T/npm
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "skip: the openai npm client (node or npm is not installed)"
elif [ ! -d "$NPM/node_modules/openai" ] &&
    ! timeout 180 npm install --prefix "$NPM" --no-audit --no-fund --loglevel=error \
        openai@4 >"$T/npm.log" 2>&1; then
    echo "skip: the openai npm client (npm install failed: $(tail -1 "$T/npm.log"))"
else
    NB_URL="http://127.0.0.1:$PORT/v1" NB_KEY=sekrit NB_OPENAI="$NPM/node_modules/openai" \
        timeout 120 node "$(dirname "$0")/serve_openai.cjs"
    check "the openai npm client (node $(node --version))" [ $? = 0 ]
fi
# SIGTERM with a stream under way: the stream ends with a 503 error event and [DONE]
rm -f "$T/last"
curl -sN -o "$T/last" "${K[@]}" --data-binary \
    '{"prompt":"And God said","max_tokens":1000,"temperature":0,"stream":true}' \
    "http://127.0.0.1:$PORT/v1/completions" &
CURL=$!
for _ in $(seq 300); do [ -s "$T/last" ] && break; sleep 0.1; done
stop B
wait $CURL
check "a stream under way at SIGTERM ends with a 503 error and [DONE]" \
    [ "$(grep '^data: {"error"' "$T/last" | sed 's/^data: //' | jq .error.code)" = 503 \
      -a "$(grep '^data: ' "$T/last" | tail -1)" = "data: [DONE]" ]

echo "$passes passed, $fails failed"
[ $fails = 0 ]
