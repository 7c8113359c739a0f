#!/usr/bin/env bash
# gradsight's speed on one GPU, as one script for a lent device machine (under 5 minutes):
#   1. images/s: gradsight train (everything it writes on) vs the article's hand-written loop
#   2. time to 90% test accuracy on the full Fashion-MNIST: gradsight vs the article's
#      torchvision DataLoader loop (needs the four IDX files: FMNIST_DIR, or data/fashion-mnist
#      carried into the checkout, or Debian's /usr/share/datasets/fashion-mnist)
#   3. the backward trace's overhead (and the run folder's first-step snapshot)
#   4. the gradient monitor's per-step overhead
#   5. host syncs per step of gradsight train (CUDA's sync debug mode): none outside the
#      log, NaN/Inf-check, sentinel and epoch-end steps (exit 1 naming any other step)
# Each step has its own timeout; a step that fails or times out is reported and the next one
# runs. Run from the repo root: bash benchmarks/gpu_bench.sh (PY=python3 to choose Python; without
# .venv it uses python3 with PYTHONPATH=src). Copy what it prints into benchmarks/RESULTS.md.
# On a lent machine without Debian's files: copy the four .gz files into data/fashion-mnist
# here (ignored by git) and carry that folder. DEVICE=cpu runs the same steps on the CPU, to
# check the script itself (the timeouts are sized for a GPU).
set -uo pipefail
DEVICE=${DEVICE:-cuda}
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
FMNIST_DIR=${FMNIST_DIR:-}
if [[ -z "$FMNIST_DIR" ]]; then
  for d in data/fashion-mnist /usr/share/datasets/fashion-mnist; do
    [[ -e "$d/train-images-idx3-ubyte.gz" || -e "$d/train-images-idx3-ubyte" ]] && FMNIST_DIR=$d && break
  done
fi
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
PLOT=${PLOT:-runs/time_to_accuracy_gpu.png}
# gradsight's recipe: the script's default (tuned on the CPU, bf16 and channels-last included)
# unless RECIPE="..." is given
recipe=()
[[ -n "${RECIPE:-}" ]] && recipe=(--recipe "$RECIPE")

date -u +"%Y-%m-%dT%H:%M:%SZ"
if [[ $DEVICE == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name())'
else
  "$PY" -c 'import torch; print("torch", torch.__version__, "on the CPU")'
fi
echo "$(nproc) CPU cores"

failed=()
step() {  # step NAME SECONDS COMMAND...: run with a timeout, report how it ended
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name (timeout ${limit}s): $*"
  local began=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "=== $name: TIMED OUT after ${limit}s"
    failed+=("$name (timeout)")
  elif [[ $rc -ne 0 ]]; then
    echo "=== $name: FAILED (exit $rc)"
    failed+=("$name (exit $rc)")
  else
    echo "=== $name: done in $((SECONDS - began))s"
  fi
}

step "images/s (bench_train)" 60 \
  "$PY" benchmarks/bench_train.py --device "$DEVICE" --epochs 2 --repeats 3
step "time to 90% (bench_time_to_accuracy)" 120 \
  "$PY" benchmarks/bench_time_to_accuracy.py --device "$DEVICE" --data-dir "$FMNIST_DIR" \
  --max-seconds 85 --article-workers 2 "${recipe[@]}" --plot "$PLOT"
step "trace overhead (bench_trace)" 45 \
  "$PY" benchmarks/bench_trace.py --device "$DEVICE" --repeats 20 --snapshot-repeats 3
step "monitor overhead (bench_monitor)" 45 \
  "$PY" benchmarks/bench_monitor.py --device "$DEVICE" --steps 300 --deep-steps 100 --resnet-steps 50
step "host syncs per step (gpu_sync_check)" 25 \
  "$PY" benchmarks/gpu_sync_check.py --device "$DEVICE" --train-args "--clip-grad-norm 1.0"

echo
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "gpu_bench: every step finished"
else
  echo "gpu_bench: ${#failed[@]} step(s) did not finish: ${failed[*]}"
  exit 1
fi
