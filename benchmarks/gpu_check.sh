#!/usr/bin/env bash
# The GPU checks in one command, on one CUDA GPU, in under 8 minutes (the venv's install not counted):
#   1. the tests that run kdloss's kernels where they target (CUDA, Triton compiled, not interpreted);
#   2. the loss benchmark at batch 16: the table on stdout, the JSON in benchmarks/results-cuda.json;
#   3. whole training steps at imgsz 640 with AMP, batch 16 and 64, if time is left
#      (benchmarks/train-step-cuda.json, benchmarks/train-step-cuda-b64.json).
# Usage: benchmarks/gpu_check.sh   (from anywhere; creates .venv with `make` if it is missing)
#        KDLOSS_PYTHON=python3 benchmarks/gpu_check.sh   (a Python where CUDA torch, kdloss and ultralytics are
#        already installed, e.g. `pip install --no-deps --no-build-isolation -e .` on a machine without internet)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${KDLOSS_PYTHON:-.venv/bin/python}
if [[ -z ${KDLOSS_PYTHON:-} && ! -d .venv ]]; then
    make .venv/.kdloss-installed
fi
unset TRITON_INTERPRET
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1
deadline=$((SECONDS + 470))  # everything below, each step's 10 s --kill-after included, within 8 minutes

"$python" -c 'import sys, torch; torch.cuda.is_available() or sys.exit(
    f"gpu_check: torch {torch.__version__} sees no CUDA device; run this on a GPU machine")'
"$python" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(), "torch", torch.__version__)'

# Each step runs even when the one before failed (a kernel test failure should not hide the timings); the
# script's exit status is the first failure's.
status=0
failed() { local rc=$?; (( status )) || status=$rc; }  # keep the first failure's exit status
# On an H200 (2026-11-30, benchmarks/gpu-check-h200.log) the kernel tests took about 2.3 s each, most of it
# compiling, in one process: 151 tests do not fit 270 s. So they run in 4 processes (pytest-xdist, in the dev
# extras; without it, in one).
parallel=()
if "$python" -c 'import xdist' 2>/dev/null; then parallel=(-n 4); fi
timeout --kill-after=10 200 "$python" -m pytest tests/test_impls.py tests/test_triton_levels.py tests/test_triton_ld.py \
    tests/test_triton_pkd.py tests/test_logit_losses.py tests/test_feature_losses.py -q --maxfail=5 ${parallel[@]+"${parallel[@]}"} || failed
# 2. the loss benchmark (seven of its nine losses took about 2 minutes at --min-time 0.3 on the H200), leaving
# 110 s for step 3; its JSON is rewritten after every case, so a run cut short keeps what it measured
if (( deadline - SECONDS - 120 > 0 )); then
    timeout --kill-after=10 $((deadline - SECONDS - 120)) "$python" -m benchmarks.run --device cuda --batch 16 \
        --min-time 0.3 --json benchmarks/results-cuda.json || failed
else
    echo "gpu_check: no time left for the loss benchmark" >&2
fi
# 3. whole training steps (plain, floor, kdloss, builtin) at imgsz 640 with AMP, batch 16 then 64 (the issue's
# two sizes), in what time is left: batch 16 gets half of it
if (( deadline - SECONDS - 10 > 100 )); then
    timeout --kill-after=10 $(((deadline - SECONDS - 10) / 2)) "$python" -m benchmarks.train_step --device cuda \
        --imgsz 640 --batch 16 --amp --rounds 3 --json benchmarks/train-step-cuda.json || failed
else
    echo "gpu_check: no time left for the training steps" >&2
fi
if (( deadline - SECONDS - 10 > 60 )); then
    timeout --kill-after=10 $((deadline - SECONDS - 10)) "$python" -m benchmarks.train_step --device cuda \
        --imgsz 640 --batch 64 --amp --rounds 3 --json benchmarks/train-step-cuda-b64.json || failed
else
    echo "gpu_check: no time left for the batch-64 training steps" >&2
fi
exit $status
