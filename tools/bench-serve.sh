#!/usr/bin/env bash
# bench-serve.sh [MODEL] [TOKENS]: `nibble serve` time to first token and tokens per second with
# 1 stream and with 4 parallel streams (--parallel 4), greedy, each stream its own prompt and
# max_tokens TOKENS (default 128). A benchmark, not a test: it prints a table from the server's
# per-request log lines (first token, tok/s) and the clients' wall time.
set -eu
NIB=${NIB:-$(dirname "$0")/../build/nibble}
MODEL=${1:-$(dirname "$0")/../models/default.gguf}
N=${2:-128}
T=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
"$NIB" serve -m "$MODEL" --port 0 --parallel 4 2>"$T/log" &
PID=$!
for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log")
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$T/log"; exit 1; }
PROMPTS=("And God said" "In the beginning" "Blessed are the" "And Jesus answered")
stream() { # I: one streaming completion of prompt I (a different prompt each: no cache hits)
    curl -sN -o /dev/null --data-binary "{\"prompt\":\"${PROMPTS[$1]} $2\",\"max_tokens\":$N,
        \"temperature\":0,\"stream\":true}" "http://127.0.0.1:$PORT/v1/completions"
}
now() { date +%s.%N; }
stream 0 warmup
run() { # K: K streams at once; prints the row
    local k=$1 t0 t1
    local skip=$(wc -l <"$T/log")
    t0=$(now)
    for i in $(seq 0 $((k - 1))); do stream $i "run$k" & done
    wait $(jobs -p | grep -v "^$PID$")
    t1=$(now)
    sleep 0.2
    tail -n +$((skip + 1)) "$T/log" | awk -v k=$k -v t0=$t0 -v t1=$t1 '
        /first token/ { for (i = 1; i <= NF; i++) {
            if ($i == "generated") g += $(i + 1) + 0
            if ($i == "token") { f += $(i + 1); if ($(i + 1) > fm) fm = $(i + 1) }
            if ($i == "tok/s") s += $(i - 1) } n++ }
        END { printf "| %d | %.1f | %.1f | %.1f | %.1f | %d |\n", k, f / n, fm, s / n,
              g / (t1 - t0), g }'
}
echo "model: $MODEL, $N tokens per stream; $(sed -n 's/^device: //p' "$T/log" | cut -d'|' -f1)"
echo
echo "| streams | first token ms (mean) | first token ms (max) | tok/s per stream | tok/s all | tokens |"
echo "|---:|---:|---:|---:|---:|---:|"
run 1
run 4
