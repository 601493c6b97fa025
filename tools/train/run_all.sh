#!/bin/sh
# Whole pipeline: corpus, tokenizer, training (base, then float and qat side by side), export.
# Usage: sh run_all.sh WORKDIR. Safe to re-run: finished phases are skipped, interrupted ones resume.
set -e
W=${1:-/tmp/train}
D=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$W"
[ -f "$W/kjv-train.txt" ] || $PY "$D/corpus.py" "$W"
[ -f "$W/tokenizer.json" ] || $PY "$D/bpe.py" "$W/kjv-train.txt" "$W/tokenizer.json" 4096
[ -f "$W/train.bin" ] || $PY "$D/train.py" prep "$W"
[ -f "$W/base.pt" ] || $PY "$D/train.py" base "$W"
# the two continuations are independent single-threaded runs from checkpoint A
[ -f "$W/float.pt" ] || $PY "$D/train.py" float "$W" > "$W/float.log" 2>&1 &
[ -f "$W/qat.pt" ] || $PY "$D/train.py" qat "$W" > "$W/qat.log" 2>&1 &
wait
[ -f "$W/float.pt" ] && [ -f "$W/qat.pt" ]
# export: the float model (F32), its naive Q4_0 (PTQ) and the QAT model in Q4_0
PYE="$PY $D/export_gguf.py"
[ -f "$W/kjv-f32.gguf" ] || $PYE "$W/float.pt" "$W/tokenizer.json" "$W/kjv-f32.gguf" f32 nibble-kjv-f32
[ -f "$W/kjv-ptq-q4_0.gguf" ] || $PYE "$W/float.pt" "$W/tokenizer.json" "$W/kjv-ptq-q4_0.gguf" q4_0 nibble-kjv-ptq-q4_0
[ -f "$W/kjv-qat-q4_0.gguf" ] || $PYE "$W/qat.pt" "$W/tokenizer.json" "$W/kjv-qat-q4_0.gguf" q4_0 nibble-kjv-qat-q4_0
