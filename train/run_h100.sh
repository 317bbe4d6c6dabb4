#!/usr/bin/env bash
# The run behind hsr_lab/data/relu_lms: four variants trained concurrently on one H100
# (python3 with torch 2.11 + CUDA), each 2500 steps of 32 x 2048 bytes, in about 6.5 minutes.
# Usage: bash train/run_h100.sh CORPUS.npz OUT_DIR [SEED]   (CORPUS from python -m
# hsr_lab.data.pystdlib). SEED (default 0) sets the initialisation, the batch order and the
# calibration batch; every seed is validated on the same held-out windows (--eval-seed 1).
set -u
corpus=$1 out=$2 seed=${3:-0}
here=$(dirname "$0")
for v in softmax relu2_learned relu2_paper relu1_learned; do
  PYTHONUNBUFFERED=1 python3 "$here/train.py" --variant $v --corpus "$corpus" --out "$out" \
    --steps 2500 --batch 32 --lr 2e-3 --warmup 100 --ramp 0.3 --eval-every 250 \
    --eval-windows 32 --seed $seed --eval-seed 1 --time-limit 480 2>&1 | sed -u "s/^/$v /" &
done
wait
