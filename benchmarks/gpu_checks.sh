#!/usr/bin/env bash
# The checks that need a GPU, as one short script for a lent device machine (a few minutes):
# the CUDA tests, then the trace and monitor benchmarks on the GPU. Run from the repo root
# with the venv built (make venv): bash benchmarks/gpu_checks.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -m pytest -q -rs tests/train/test_device.py tests/autograd/test_trace.py \
  tests/autograd/test_gradstats.py -k "cuda"
$PY benchmarks/bench_trace.py --device cuda --repeats 30
$PY benchmarks/bench_monitor.py --device cuda --steps 400 --deep-steps 200
