#!/usr/bin/env bash
# The GPU check of the training data path, in one go, for a machine with one CUDA
# GPU (not run yet; benchmarks/gpu_engine.sh, a shorter check, ran on an H200 on
# 2026-12-04: benchmarks/results/2026-12-04-gpu-h200/).
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default: ./gpu-check)
#
# What it measures, each written as JSON beside a log:
#   - the machine (nvidia-smi, torch, CUDA);
#   - benchmarks/bench_throughput.py on CUDA at 64, 128 and 256 px on drawn images:
#     the trainer's training pass (loader workers auto, pinned memory, bf16 autocast,
#     channels-last) against the pure compute rate of the same model and batch, with
#     the data-wait share, GPU utilisation (NVML) and peak memory:
#       throughput-cnn-b32.json     the compact CNN at its default batch of 32
#       throughput-cnn-b256.json    the compact CNN at batch 256
#       throughput-resnet18.json    a ResNet-18 (random weights) at batch 256
#   - benchmarks/bench_epoch_shares.py on CUDA: 100 000 drawn images (SHARES_N), 3
#     epochs with scores written after each: the E-step's and the scoring's share of
#     an epoch (epoch-shares-100000.json; skipped with SHARES_N=0)
# Targets of issue 12: data wait under 5 % of the step, GPU utilisation over 90 %,
# E-step and scoring each under 5 % of an epoch at 100 000 samples.
# Not measured here: several GPUs (NCCL needs one GPU per process).
# Expected time on one H200: about 10 minutes for the three throughput runs (each
# capped at 200 s), then about 5 for the shares; run the shares alone with
# STAGES=shares, the throughput alone with STAGES=throughput.
#
# Packages: the trainer needs opencv-python-headless, scipy, platformdirs, tqdm and
# zuko besides what a CUDA PyTorch image usually holds (nvidia-ml-py for the GPU's
# utilisation). Where the machine has no network, download their wheels beforehand
# (`pip download --no-deps -d .whl PACKAGE ...`) and bring .whl/ along; they are
# installed into /tmp/site here.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
# shellcheck source=benchmarks/gpu_setup.sh
source benchmarks/gpu_setup.sh

machine_check "$OUT/machine.log" cuda

run() {  # name, then bench_throughput.py arguments
  local name=$1; shift
  echo "== $name" | tee -a "$OUT/gpu_check.log"
  timeout 200 "$PY" benchmarks/bench_throughput.py --device cuda --synthetic 4096 \
    --sizes 64,128,256 --repeats 3 --json "$OUT/$name.json" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
}
STAGES=${STAGES:-throughput,shares}
if [[ $STAGES == *throughput* ]]; then
  run throughput-cnn-b32 --batch-size 32
  run throughput-cnn-b256 --batch-size 256
  run throughput-resnet18 --batch-size 256 --backbone resnet18
fi
SHARES_N=${SHARES_N:-100000}
if [[ $STAGES == *shares* && $SHARES_N -gt 0 ]]; then
  echo "== epoch-shares-$SHARES_N" | tee -a "$OUT/gpu_check.log"
  timeout 420 "$PY" benchmarks/bench_epoch_shares.py --device cuda --synthetic "$SHARES_N" \
    --epochs 3 --batch-size 256 --workdir "${WORKDIR:-/tmp}" \
    --json "$OUT/epoch-shares-$SHARES_N.json" 2>&1 | tee -a "$OUT/gpu_check.log"
fi
echo "results in $OUT"
