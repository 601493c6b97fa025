#!/bin/sh
# Whole pipeline: corpus, tokenizer, training (base -> float, base -> qat), export. Usage: sh run_all.sh WORKDIR
# Safe to re-run: finished phases are skipped, interrupted ones resume from their checkpoint.
set -e
W=${1:-/tmp/train}
D=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$W"
[ -f "$W/kjv-train.txt" ] || $PY "$D/corpus.py" "$W"
[ -f "$W/tokenizer.json" ] || $PY "$D/bpe.py" "$W/kjv-train.txt" "$W/tokenizer.json" 4096
[ -f "$W/train.bin" ] || $PY "$D/train.py" prep "$W"
for phase in base float qat; do
    [ -f "$W/$phase.pt" ] || $PY "$D/train.py" $phase "$W"
done
