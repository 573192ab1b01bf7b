#!/usr/bin/env bash
# The engine on one CUDA GPU, in one go (issue 13's stronger models, and the first
# real training of the product on a GPU):
#
#   DATA=../shared/datasets bash benchmarks/gpu_engine.sh   # results under $OUT
#
# Stages, each capped by `timeout` so that a slow one leaves the others their time,
# each writing its results JSON as soon as it ends (all packed into
# $OUT/gpu-engine.tgz at the end, with the log):
#   machine.log            nvidia-smi, torch, CUDA, the packages the trainer needs
#   utk-cnn-64.json        UTKFace age-u:0.3, the compact CNN at 64 px, seed 0: the
#                          product's default run, on CUDA (bf16 autocast, loader
#                          workers), against the CPU figure of the same seed
#   utk-r18-128.json       the same protocol, ResNet-18 (random weights) at 128 px,
#                          seeds 0-2: does a deeper network at a larger input, whose
#                          cost only a GPU bears, reach the 0.92 AUROC?
#   utk-r18-128-60ep.json  the same at 60 epochs, seed 0
#   throughput-*.json      benchmarks/bench_throughput.py on CUDA, drawn images,
#                          64 and 128 px, batch 256: training images/s of the CNN and
#                          of ResNet-18, data-wait share, GPU utilisation, memory
#
# EXTRA is appended to every bench stage (a dry run on a CPU: EXTRA="--set epochs=1"
# DEVICE=cpu). Packages the machine lacks travel as wheels in .whl/ (zuko, platformdirs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-engine}
RES=$OUT/results
mkdir -p "$RES"
DATA=${DATA:-../shared/datasets}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}
# shellcheck source=benchmarks/gpu_setup.sh
source benchmarks/gpu_setup.sh
LOG=$RES/gpu_engine.log

pack() {  # PACK_ONLY=1 leaves only the archive under $OUT (for a device that returns few files)
  tar czf "$OUT/gpu-engine.tgz" -C "$RES" . && echo "packed $(ls "$RES" | wc -l) files" &&
    if [[ ${PACK_ONLY:-0} == 1 ]]; then rm -rf "$RES"; fi
}
trap pack EXIT

machine_check "$RES/machine.log" "$DEVICE"

# Every stage ends by BUDGET seconds after the start (default 520), so the pack at the
# end runs inside the caller's own limit.
END=$(( $(date +%s) + ${BUDGET:-520} ))
cap() {  # the smaller of $1 seconds and the time left before END
  local left=$(( END - $(date +%s) ))
  (( left < $1 )) && echo "$left" || echo "$1"
}
stage() {  # name, cap in seconds, then the command; its output in $RES/name.log
  local name=$1 c; c=$(cap "$2"); shift 2
  if (( c < 20 )); then echo "== $name skipped: ${c}s left" | tee -a "$LOG"; return; fi
  echo "== $name (cap ${c}s) $(date +%T)" | tee -a "$LOG"
  timeout "$c" "$@" >"$RES/$name.log" 2>&1
  local rc=$?
  grep -vE '^ *(epoch|scor)' "$RES/$name.log" | tail -n 12
  echo "== $name rc $rc $(date +%T)" | tee -a "$LOG"
}
ages() {  # name, cap in seconds, then bench_settings.py arguments
  local name=$1 c=$2; shift 2
  # shellcheck disable=SC2086
  stage "$name" "$c" "$PY" benchmarks/bench_settings.py "$DATA/utkface-part1" --format utkface \
    --task age --noise age-u:0.3 --set "device=$DEVICE" --json "$RES/$name.json" "$@" $EXTRA
}
throughput() {  # name, then bench_throughput.py arguments
  local name=$1; shift
  stage "$name" 60 "$PY" benchmarks/bench_throughput.py --device "$DEVICE" --synthetic 4096 \
    --sizes 64,128 --repeats 1 --batch-size 256 --json "$RES/$name.json" "$@"
}

ages utk-cnn-64 120 --seeds 1
ages utk-r18-128 270 --seeds 3 --set backbone=resnet18 --set image_size=128
throughput throughput-cnn
throughput throughput-resnet18 --backbone resnet18
ages utk-r18-128-60ep 120 --seeds 1 --set backbone=resnet18 --set image_size=128 --set epochs=60
echo "done $(date +%T)" | tee -a "$LOG"
