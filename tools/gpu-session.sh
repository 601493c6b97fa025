#!/bin/sh
# gpu-session.sh pack | run: the GPU measurements of issues 2 and 5 in one device-machine call.
# Not part of the tests. A session lent a device machine (see the device tool's README) runs:
#
#   sh tools/gpu-session.sh pack        # here, after building build/: fills .gpu/ (git-ignored)
#   device run, carry [".gpu"], command: sh tools/gpu-session.sh run
#
# pack puts into .gpu/ (in .gitignore): the nibble binary (Release build/), the llama.cpp peer driver and its
# Vulkan backend libraries (../shared/tools, node-llama-cpp), and the Vulkan loader .debs the bare
# machine lacks, about 12 MB compressed. run (on the device machine, in the repository root):
#   1. unpacks the loader and prints `nibble info` (device line, capabilities, bandwidth probe);
#   2. pipeline cache: two `nibble profile` starts on one cache folder; the second should
#      compile nothing (issue 2);
#   3. makes the 1b and 26b-a4b-2l presets, runs bench-vs-llamacpp.sh on both (nibble and
#      llama.cpp's Vulkan backend on the same GPU) and `nibble profile` (issue 5), the decode
#      with the int8 products on and off (NIBBLE_DISABLE=int8, issue 15).
# Everything is printed and copied to $OUT when the device tool sets it. PRESETS (default
# "1b 26b-a4b-2l"), PP (512) and TG (128) change what run measures (a dry run here on lavapipe:
# PRESETS=tiny-h256 PP=32 TG=8 OUT=/tmp/gs-out sh tools/gpu-session.sh run).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
G=$HERE/.gpu
case "${1:-}" in
pack)
    PEER_DIR=${PEER_DIR:-/tmp/nibble-peer}
    [ -x "$HERE/build/nibble" ] || { echo "$0: build build/ first" >&2; exit 1; }
    rm -rf "$G" && mkdir -p "$G/debs" /tmp/amd64/partial
    sh "$HERE/../shared/tools/setup_peer.sh" >/dev/null
    B=vk/package/bins/linux-x64-vulkan
    tar -C "$PEER_DIR" -cJf "$G/peer.tar.xz" peer_vk $B/libggml-base.so $B/libggml-vulkan.so \
        $B/libggml.vulkan.v0.5.0.so $B/libllama.vulkan.v0.5.0.so $B/libggml-cpu-x64.so \
        $B/libggml-cpu-haswell.so
    xz -c "$HERE/build/nibble" >"$G/nibble.xz"
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update >/dev/null && (cd "$G/debs" && apt-get $o download libvulkan1 >/dev/null)
    du -sh "$G"
    ;;
run)
    OUT=${OUT:-/tmp/gpu-out} PP=${PP:-512} TG=${TG:-128}
    mkdir -p "$OUT" /tmp/gs
    for f in "$G"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
    if [ ! -e /usr/share/vulkan/icd.d/nvidia_icd.json ] &&
        [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    xz -dc "$G/nibble.xz" >/tmp/gs/nibble && chmod +x /tmp/gs/nibble
    tar -C /tmp/gs -xJf "$G/peer.tar.xz"
    export NIBBLE=/tmp/gs/nibble PEER=/tmp/gs/peer_vk PEER_BACKENDS=/tmp/gs/vk/package/bins/linux-x64-vulkan
    export XDG_RUNTIME_DIR=/tmp LD_LIBRARY_PATH=$PEER_BACKENDS NIBBLE_CACHE_DIR=/tmp/gs/cache
    {
        echo "== nibble info"
        $NIBBLE info --bandwidth
        echo "== pipeline cache: first and second start"
        $NIBBLE profile -m "$HERE/models/default.gguf" -p 4 -n 2 | grep '^pipelines'
        $NIBBLE profile -m "$HERE/models/default.gguf" -p 4 -n 2 | grep '^pipelines'
        for preset in ${PRESETS:-1b 26b-a4b-2l}; do
            $NIBBLE mkmodel --preset $preset -o /tmp/gs/$preset.gguf >/dev/null
            echo "== bench-vs-llamacpp $preset (llama.cpp Vulkan on the first GPU)"
            LLAMA_VK_DEVICES=${LLAMA_VK_DEVICES:-0} NO_CPU=1 \
                sh "$HERE/tools/bench-vs-llamacpp.sh" /tmp/gs/$preset.gguf "$PP" "$TG" 3
            echo "== nibble profile $preset -p $PP -n 32"
            $NIBBLE profile -m /tmp/gs/$preset.gguf -p "$PP" -n 32
            echo "== int8 decode products (engine/op_int8.h) on and off, $preset, alternating"
            for r in 1 2; do
                $NIBBLE profile -m /tmp/gs/$preset.gguf -p 16 -n 32 | grep -i 'decode\|step\|total'
                NIBBLE_DISABLE=int8 $NIBBLE profile -m /tmp/gs/$preset.gguf -p 16 -n 32 |
                    grep -i 'decode\|step\|total'
            done
            rm -f /tmp/gs/$preset.gguf
        done
    } 2>&1 | tee "$OUT/gpu-session.log"
    ;;
*)
    echo "usage: $0 pack | run" >&2
    exit 2
    ;;
esac
