#!/usr/bin/env bash
# type-speed.sh NIBBLE ROUNDS MODEL...: decode matrix-vector speed per weight type, as a share of
# the device's copy bandwidth, steady on a shared machine: ROUNDS rounds interleave the models
# (`nibble profile --min`, each dispatch's fastest of 16 steps) and each model keeps its best
# round; the copy bandwidth is the best of the rounds' fresh probes. Prints one line per model.
# Example: tools/type-speed.sh build/nibble 5 /tmp/h1024-q4_0.gguf /tmp/h1024-q4_k.gguf
set -euo pipefail
bin=$1 rounds=$2
shift 2
declare -A best
copy=0
for ((r = 0; r < rounds; r++)); do
    for m in "$@"; do
        out=$("$bin" profile -m "$m" -p 8 -n 16 --min --fresh-probe)
        # "matrix steps: 70.6% of the time, 90.41 MB at 4.06 GB/s = ... (3.97 GB/s)"
        gbs=$(sed -n 's/^matrix steps:.* MB at \([0-9.]*\) GB\/s.*/\1/p' <<<"$out" | tail -1)
        cb=$(sed -n 's/^bandwidth: copy \([0-9.]*\) GB\/s.*/\1/p' <<<"$out")
        awk -v a="$gbs" -v b="${best[$m]:-0}" 'BEGIN { exit !(a > b) }' && best[$m]=$gbs
        awk -v a="$cb" -v b="$copy" 'BEGIN { exit !(a > b) }' && copy=$cb
    done
done
echo "copy bandwidth (best of $rounds fresh probes): $copy GB/s"
for m in "$@"; do
    awk -v m="$(basename "$m")" -v g="${best[$m]}" -v c="$copy" \
        'BEGIN { printf "%-28s decode matrix steps %.2f GB/s = %.1f%% of copy bandwidth\n", m, g, 100 * g / c }'
done
