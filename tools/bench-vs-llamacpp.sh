#!/bin/sh
# bench-vs-llamacpp.sh MODEL [PP] [TG] [REPS]: runs `nibble bench` and llama.cpp (the peer driver
# of ../shared/tools on node-llama-cpp's prebuilt libraries: its Vulkan backend on the same device,
# and its CPU backend) on one model and prints the three and the ratios. Not part of the tests.
#
# Environment: NIBBLE (default build/nibble), LLAMA_VK_DEVICES (GGML_VK_VISIBLE_DEVICES for
# llama.cpp; default 0, which is how llama.cpp takes lavapipe), NO_CPU=1 skips the CPU run,
# NIBBLE_ARGS adds options to nibble bench (e.g. "-b 16").
# nibble's figure is its best repetition (llama.cpp's driver reports its best too); nibble runs
# tg at depth 0 while the driver decodes after its prompt (depth PP).
set -eu
[ $# -ge 1 ] || { echo "usage: $0 MODEL [PP=512] [TG=128] [REPS=3]" >&2; exit 2; }
MODEL=$1; PP=${2:-512}; TG=${3:-128}; REPS=${4:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
NIBBLE=${NIBBLE:-$HERE/build/nibble}
SHARED=$HERE/../shared/tools
[ -x "$NIBBLE" ] || { echo "$0: no nibble at $NIBBLE (set NIBBLE=)" >&2; exit 1; }
if [ -z "${PEER:-}" ]; then
    sh "$SHARED/setup_peer.sh" >/dev/null
    . "$SHARED/peer_env.sh"
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

field() { # field NAME JSONLINE: a string or number value
    case "$2" in
    *"\"$1\": \""*) printf '%s\n' "$2" | sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" ;;
    *) printf '%s\n' "$2" | sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" ;;
    esac
}
# shellcheck disable=SC2086
out=$("$NIBBLE" bench -m "$MODEL" -p "$PP" -n "$TG" -r "$REPS" -o json ${NIBBLE_ARGS:-})
pp_line=$(printf '%s\n' "$out" | grep "\"test\": \"pp" || true)
tg_line=$(printf '%s\n' "$out" | grep "\"test\": \"tg" || true)
nb_pp=$(field max_ts "$pp_line"); nb_tg=$(field max_ts "$tg_line")
echo "device: $(field device "$tg_line")"
echo "nibble:           pp$PP $nb_pp tok/s  tg$TG $nb_tg tok/s  (weights $(field weights_gbs "$tg_line") GB/s in tg, $(field bw_pct "$tg_line")% of copy bandwidth)"

vk=$(GGML_VK_VISIBLE_DEVICES=${LLAMA_VK_DEVICES:-0} "$PEER" "$MODEL" bench "$PP" "$TG" "$REPS" 2>/dev/null | grep '^peer pp' || true)
vk_pp=$(printf '%s\n' "$vk" | awk '{print $3}'); vk_tg=$(printf '%s\n' "$vk" | awk '{print $6}')
echo "llama.cpp Vulkan: pp$PP ${vk_pp:-?} tok/s  tg$TG ${vk_tg:-?} tok/s"
cpu_pp=; cpu_tg=
if [ "${NO_CPU:-0}" != 1 ]; then
    cpu=$(PEER_NGL=0 "$PEER" "$MODEL" bench "$PP" "$TG" "$REPS" 2>/dev/null | grep '^peer pp' || true)
    cpu_pp=$(printf '%s\n' "$cpu" | awk '{print $3}'); cpu_tg=$(printf '%s\n' "$cpu" | awk '{print $6}')
    echo "llama.cpp CPU:    pp$PP ${cpu_pp:-?} tok/s  tg$TG ${cpu_tg:-?} tok/s"
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "?"; else printf "%.2fx", a / b }'; }
echo "ratio nibble / llama.cpp Vulkan: pp $(ratio "$nb_pp" "$vk_pp")  tg $(ratio "$nb_tg" "$vk_tg")   (targets: pp >= 1x, tg >= 2x)"
[ -z "$cpu_pp" ] || echo "ratio nibble / llama.cpp CPU:    pp $(ratio "$nb_pp" "$cpu_pp")  tg $(ratio "$nb_tg" "$cpu_tg")"
