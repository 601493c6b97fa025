#!/bin/sh
# Regenerates tests/data/types/ (the weight-type goldens of tests/test_types_golden.c) and the
# status table of tests/data/types/README.md. A development tool: it needs llama.cpp through
# ../shared/tools (npm packages, built once), python3 and a C compiler; CI never runs it.
#
#   tools/make-type-goldens.sh [NIBBLE [WORK]]
#
# NIBBLE: the nibble binary (default build/nibble), for `mkmodel` and the status table;
# WORK: scratch folder (default /tmp/nibble-types). Takes 4 minutes on 2 cores with Mesa's shader
# cache warm, up to 30 the first time (llama.cpp's Vulkan backend compiling its pipelines on lavapipe).
#
# 1. Base models: `nibble mkmodel --preset types-{dense,moe,ple} --type f16 --seed 1` (F16 like a
#    converted checkpoint; llama.cpp keeps per_layer_model_proj, which it never quantizes, in it).
# 2. Stored files (tests/data/types/{dense,moe,ple}.gguf): llama.cpp's llama_model_quantize with
#    per-tensor type overrides (what `llama-quantize --tensor-type REGEX=TYPE` does): dense holds all
#    eleven types, moe four of them on its experts, ple the other seven on its own tensors; the
#    rest Q4_0 (see below). Report only: moe-all and ple-all, every type on every structure.
# 3. Report-only files (WORK/mix-*.gguf, not stored: the 14 would be ~11 MB and cost lavapipe
#    minutes of pipeline compiles): llama.cpp's own mixes of the dense base,
#    `$PEER IN quantize OUT FTYPE [EMBD_TYPE]`.
# 4. llama.cpp's logits on its CPU backend and its Vulkan backend (lavapipe) for the 24 ids of
#    types.ids (the ids of ../shared/golden/dense.ids below 512, in order; BOS first).
# 5. WORK/table.md: per file the types it holds, llama.cpp's CPU-vs-Vulkan spread and nibble's
#    agreement in prefill and decode mode (or the reason it refuses the file).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NIBBLE=${1:-$ROOT/build/nibble}
WORK=${2:-/tmp/nibble-types}
OUT=$ROOT/tests/data/types
SHARED=$ROOT/../shared
mkdir -p "$WORK" "$OUT"

P=$(sh "$SHARED/tools/setup_peer.sh" | tail -1)
. "$SHARED/tools/peer_env.sh"

# llama_model_quantize with tensor type overrides (llama-quantize --tensor-type), same libraries as $PEER
cat > "$WORK/qtt.c" <<'EOF'
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* qtt IN OUT FTYPE [REGEX=TYPE ...]: the first matching REGEX names a tensor's type */
int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: qtt IN OUT FTYPE [REGEX=TYPE ...]\n"); return 2; }
    llama_backend_init();
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = (enum llama_ftype)atoi(argv[3]);
    qp.nthread = 2;
    struct llama_model_tensor_override *ov = calloc((size_t)argc, sizeof *ov);
    int n = 0;
    for (int i = 4; i < argc; i++) {
        char *eq = strrchr(argv[i], '=');
        int t = -1;
        if (eq) {
            *eq = 0;
            for (int k = 0; k < GGML_TYPE_COUNT && t < 0; k++)
                if (ggml_type_name((enum ggml_type)k) && !strcasecmp(ggml_type_name((enum ggml_type)k), eq + 1)) t = k;
        }
        if (t < 0) { fprintf(stderr, "bad override %s\n", argv[i]); return 2; }
        ov[n].pattern = argv[i];
        ov[n++].type = (enum ggml_type)t;
    }
    if (n) qp.tt_overrides = ov;
    if (llama_model_quantize(argv[1], argv[2], &qp)) { fprintf(stderr, "quantize failed\n"); return 1; }
    return 0;
}
EOF
B="$P/vk/package/bins/linux-x64-vulkan"
gcc -O2 -o "$WORK/qtt" "$WORK/qtt.c" -I"$P/src/include" -I"$P/src/ggml/include" -L"$B" \
    -l:libllama.vulkan.v0.5.0.so -l:libggml.vulkan.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$B"
QTT="$WORK/qtt"

# ---- 1. bases -----------------------------------------------------------------------------------
for s in dense moe ple; do
    "$NIBBLE" mkmodel --preset types-$s -o "$WORK/base-$s.gguf" --type f16 --seed 1
done

# ---- 2. the stored files -------------------------------------------------------------------------
# dense: every type, in different roles: q|k|v and gate|up of one type (fused products) or mixed,
# the output/embedding (tied), attn_output and ffn_down with K=256 and K=512.
X='blk\.'
"$QTT" "$WORK/base-dense.gguf" "$OUT/dense.gguf" 2 '^token_embd\.weight$=q6_K' \
    "${X}0\.attn_[qkv]\.=q4_K" "${X}0\.attn_output=q5_K" "${X}0\.ffn_(gate|up)\.=q2_K" "${X}0\.ffn_down=q3_K" \
    "${X}1\.attn_[qk]\.=iq4_nl" "${X}1\.attn_v\.=bf16" "${X}1\.attn_output=iq4_xs" "${X}1\.ffn_gate\.=q4_1" \
    "${X}1\.ffn_up\.=q5_0" "${X}1\.ffn_down=q5_1"
# MoE and PLE: the experts and PLE's own tensors in new types, everything else Q4_0, so that a
# load compiles few pipelines (lavapipe spends ~1 s of CPU per type and kernel family on them).
"$QTT" "$WORK/base-moe.gguf" "$OUT/moe.gguf" 2 \
    "${X}0\.ffn_gate_up_exps=q4_K" "${X}0\.ffn_down_exps=q6_K" "${X}1\.ffn_gate_up_exps=iq4_xs" \
    "${X}1\.ffn_down_exps=q5_0" '.=q4_0'
"$QTT" "$WORK/base-ple.gguf" "$OUT/ple.gguf" 2 '^token_embd\.weight$=q5_K' '^per_layer_token_embd\.weight$=q3_K' \
    "${X}0\.inp_gate=q2_K" "${X}1\.inp_gate=q3_K" "${X}2\.inp_gate=bf16" "${X}3\.inp_gate=q5_K" \
    "${X}0\.proj=q4_1" "${X}1\.proj=q5_1" "${X}2\.proj=iq4_nl" "${X}3\.proj=bf16" '.=q4_0'

# Report only (WORK, not stored: each load costs lavapipe ~15 s of pipelines): every type on
# every structure, the MoE and PLE tensors of all roles (PLE's proj rows are P=64 wide: 32-block
# types only).
"$QTT" "$WORK/base-moe.gguf" "$WORK/moe-all.gguf" 2 '^token_embd\.weight$=q5_0' \
    "${X}0\.attn_[qkv]\.=q5_1" "${X}0\.attn_output=iq4_nl" "${X}0\.ffn_(gate|up)\.=q5_K" "${X}0\.ffn_down\.=iq4_xs" \
    "${X}0\.ffn_gate_up_exps=q4_K" "${X}0\.ffn_down_exps=q6_K" \
    "${X}1\.attn_q\.=q4_1" "${X}1\.attn_k\.=bf16" "${X}1\.attn_output=q5_0" "${X}1\.ffn_gate\.=q6_K" \
    "${X}1\.ffn_up\.=q3_K" "${X}1\.ffn_down\.=q2_K" "${X}1\.ffn_gate_up_exps=q2_K" "${X}1\.ffn_down_exps=q5_0"
"$QTT" "$WORK/base-ple.gguf" "$WORK/ple-all.gguf" 2 '^token_embd\.weight$=q4_K' '^per_layer_token_embd\.weight$=q5_K' \
    "${X}0\.attn_[qkv]\.=q3_K" "${X}0\.attn_output=q6_K" "${X}0\.ffn_(gate|up)\.=iq4_xs" "${X}0\.ffn_down=q4_1" \
    "${X}0\.inp_gate=q2_K" "${X}0\.proj=q5_1" \
    "${X}1\.attn_q\.=q2_K" "${X}1\.attn_k\.=bf16" "${X}1\.attn_v\.=iq4_nl" "${X}1\.attn_output=q5_K" \
    "${X}1\.ffn_gate=q6_K" "${X}1\.ffn_up=q4_K" "${X}1\.ffn_down=q5_0" "${X}1\.inp_gate=q4_1" "${X}1\.proj=iq4_nl" \
    "${X}2\.attn_q\.=q5_1" "${X}2\.attn_output=q2_K" "${X}2\.ffn_(gate|up)=q4_1" "${X}2\.ffn_down=q4_K" \
    "${X}2\.inp_gate=q5_0" "${X}2\.proj=bf16" \
    "${X}3\.attn_q\.=iq4_xs" "${X}3\.attn_output=iq4_nl" "${X}3\.ffn_gate=q3_K" "${X}3\.ffn_up=q5_K" \
    "${X}3\.ffn_down=q6_K" "${X}3\.inp_gate=iq4_nl" "${X}3\.proj=q5_0"

# ---- 3. llama.cpp's mixes on the dense base (report only) --------------------------------------
# name ftype [embd type]; ftype = llama_ftype number (include/llama.h)
MIXES="Q4_K_M:15 Q5_K_M:17 Q6_K:18 Q3_K_M:12 Q2_K:10 Q4_K_S:14 IQ4_NL:25 IQ4_XS:30 Q4_1:3 Q5_0:8
Q5_1:9 BF16:32 Q4_0+q6_K-embd:2:q6_K Q4_0+f16-embd:2:f16"
for m in $MIXES; do
    name=${m%%:*} rest=${m#*:}
    ft=${rest%%:*} emb=
    [ "$rest" != "$ft" ] && emb=${rest#*:}
    # shellcheck disable=SC2086
    "$PEER" "$WORK/base-dense.gguf" quantize "$WORK/mix-$name.gguf" "$ft" $emb >/dev/null
done

# ---- 4. llama.cpp's logits ----------------------------------------------------------------------
IDS=$(python3 -c "import sys; print(' '.join([t for t in open(sys.argv[1]).read().split() if int(t) < 512][:24]))" \
    "$SHARED/golden/dense.ids")
echo "$IDS" > "$OUT/types.ids"
logits() { # GGUF OUTPREFIX
    # shellcheck disable=SC2086
    PEER_NGL=0 "$PEER" "$1" logits "$2.llamacpp-cpu.f32" $IDS >/dev/null
    # shellcheck disable=SC2086
    GGML_VK_VISIBLE_DEVICES=0 "$PEER" "$1" logits "$2.llamacpp-vulkan.f32" $IDS >/dev/null
}
for s in dense moe ple; do logits "$OUT/$s.gguf" "$OUT/$s"; done
for s in moe-all ple-all; do logits "$WORK/$s.gguf" "$WORK/$s"; done
for m in $MIXES; do logits "$WORK/mix-${m%%:*}.gguf" "$WORK/mix-${m%%:*}"; done

# ---- 5. the status table: types, llama.cpp's spread, nibble's agreement -------------------------
nb() { # GGUF OUT [--decode]: nibble's logits, or the reason it has none in OUT.err
    # shellcheck disable=SC2086
    "$NIBBLE" logits -m "$1" --ids "$IDS" -o "$2" ${3:-} 2> "$2.err" >/dev/null || rm -f "$2"
}
ROWS=
for s in dense moe ple; do
    nb "$OUT/$s.gguf" "$WORK/$s.nb-prefill.f32"; nb "$OUT/$s.gguf" "$WORK/$s.nb-decode.f32" --decode
    ROWS="$ROWS $OUT/$s.gguf:$OUT/$s:$WORK/$s:stored"
done
for s in moe-all ple-all; do
    nb "$WORK/$s.gguf" "$WORK/$s.nb-prefill.f32"; nb "$WORK/$s.gguf" "$WORK/$s.nb-decode.f32" --decode
    ROWS="$ROWS $WORK/$s.gguf:$WORK/$s:$WORK/$s:all-types"
done
for m in $MIXES; do
    n=mix-${m%%:*}
    nb "$WORK/$n.gguf" "$WORK/$n.nb-prefill.f32"; nb "$WORK/$n.gguf" "$WORK/$n.nb-decode.f32" --decode
    ROWS="$ROWS $WORK/$n.gguf:$WORK/$n:$WORK/$n:${m%%:*}"
done
# shellcheck disable=SC2086
python3 - $ROWS > "$WORK/table.md" <<'EOF'
import array, collections, os, struct, sys
TN = {0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 10: 'Q2_K', 11: 'Q3_K',
      12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 20: 'IQ4_NL', 23: 'IQ4_XS', 30: 'BF16'}
def tensors(path):  # (name, ne, type) of a GGUF's tensor infos
    d = open(path, 'rb').read(1 << 22); o = 8
    def u(f):
        nonlocal o; v = struct.unpack_from('<' + f, d, o)[0]; o += struct.calcsize('<' + f); return v
    def s():
        nonlocal o; n = u('Q'); o += n; return d[o - n:o].decode()
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    nt, nkv = u('Q'), u('Q')
    for _ in range(nkv):
        s(); t = u('I')
        if t == 8: s()
        elif t == 9:
            et, n = u('I'), u('Q')
            if et == 8:
                for _ in range(n): s()
            else: o += size[et] * n
        else: o += size[t]
    out = []
    for _ in range(nt):
        name = s(); ne = [u('Q') for _ in range(u('I'))]; t = u('I'); u('Q'); out.append((name, ne, TN.get(t, str(t))))
    return out
def load(p):
    a = array.array('f'); a.frombytes(open(p, 'rb').read()); return a
def cmp(a, b, V=512):
    rows = len(b) // V; agree = 0; tot = 0.0; mx = 0.0
    for r in range(rows):
        x, y = a[r * V:(r + 1) * V], b[r * V:(r + 1) * V]
        agree += max(range(V), key=x.__getitem__) == max(range(V), key=y.__getitem__)
        for p, q in zip(x, y):
            d = abs(p - q); tot += d; mx = max(mx, d)
    return agree / rows, tot / (rows * V), mx
print('| file | mix | size | types (tensors of each; 2-D and 3-D) | llama.cpp cpu-vulkan: top-1 / mean / max '
      '| nibble prefill vs cpu, vs vulkan: top-1 / mean | nibble decode vs cpu, vs vulkan |')
print('|---|---|---:|---|---|---|---|')
for row in sys.argv[1:]:
    gguf, ref, nbp, mix = row.split(':')
    c = collections.Counter(t for n, ne, t in tensors(gguf) if len(ne) >= 2 and ne[1] > 1)
    types = ' '.join(f'{k} {v}' for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
    cpu, vk = load(ref + '.llamacpp-cpu.f32'), load(ref + '.llamacpp-vulkan.f32')
    t, m, x = cmp(cpu, vk)
    cells = []
    for mode in ('prefill', 'decode'):
        p = f'{nbp}.nb-{mode}.f32'
        if os.path.exists(p):
            got = load(p); a, b = cmp(got, cpu), cmp(got, vk)
            ok = a[0] >= t and b[0] >= t and a[1] <= m and b[1] <= m
            cells.append(f'{a[0]:.3f} / {a[1]:.5f}, {b[0]:.3f} / {b[1]:.5f}' + ('' if ok else ' **outside**'))
        else:
            err = open(p + '.err').read().strip().splitlines()
            msg = err[-1] if err else 'failed'
            cells.append('refused: ' + (msg.split('unsupported type ')[1].split(' ')[0] if 'unsupported type' in msg else msg))
    name = os.path.basename(gguf)
    print(f'| `{name}` | {"overrides (stored)" if mix == "stored" else "overrides (report)" if mix == "all-types" else mix} | {os.path.getsize(gguf) / 1e6:.2f} MB | {types} '
          f'| {t:.3f} / {m:.5f} / {x:.3f} | {cells[0]} | {cells[1]} |')
EOF
cat "$WORK/table.md"
du -ch "$OUT"/* | tail -1
