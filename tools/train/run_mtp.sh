#!/bin/sh
# The MTP assistant of the default model: corpus, greedy continuations of the target, training, held-out
# acceptance, export. Usage: sh run_mtp.sh WORKDIR [TARGET.gguf]. Safe to re-run: finished phases are skipped,
# an interrupted training resumes from its last checkpoint (every 50 steps).
set -e
W=${1:-/tmp/mtp}
D=$(cd "$(dirname "$0")" && pwd)
T=${2:-$D/../../models/default.gguf}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$W"
[ -f "$W/kjv-train.txt" ] || $PY "$D/corpus.py" "$W"
[ -f "$W/mtp-gen.pt" ] || $PY "$D/train_mtp.py" gen "$W" "$T"
[ -f "$W/mtp.pt" ] || $PY "$D/train_mtp.py" train "$W" "$T"
[ -f "$W/mtp-eval.txt" ] || $PY "$D/train_mtp.py" eval "$W" "$T" > "$W/mtp-eval.txt"
cat "$W/mtp-eval.txt"
[ -f "$W/default-mtp.gguf" ] || $PY "$D/train_mtp.py" export "$W" "$T" "$W/default-mtp.gguf" q4_0
