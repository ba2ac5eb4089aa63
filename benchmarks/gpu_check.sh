#!/usr/bin/env bash
# The GPU checks in one command, on one CUDA GPU, in under 8 minutes (the venv's install not counted):
#   1. the tests that run kdloss's kernels where they target (CUDA, Triton compiled, not interpreted);
#   2. the loss benchmark at batch 16: the table on stdout, the JSON in benchmarks/results-cuda.json;
#   3. whole training steps at imgsz 640 with AMP if time is left (benchmarks/train-step-cuda.json).
# Usage: benchmarks/gpu_check.sh   (from anywhere; creates .venv with `make` if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d .venv ]]; then
    make .venv/.kdloss-installed
fi
unset TRITON_INTERPRET
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONUNBUFFERED=1

.venv/bin/python -c 'import sys, torch; torch.cuda.is_available() or sys.exit(
    f"gpu_check: torch {torch.__version__} sees no CUDA device; run this on a GPU machine")'
.venv/bin/python -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(), "torch", torch.__version__)'

deadline=$((SECONDS + 470))  # both steps together stay under 8 minutes
timeout --kill-after=10 270 .venv/bin/python -m pytest tests/test_impls.py tests/test_logit_losses.py \
    tests/test_feature_losses.py -q -x
timeout --kill-after=10 $((deadline - SECONDS)) .venv/bin/python -m benchmarks.run --device cuda --batch 16 \
    --json benchmarks/results-cuda.json
# 3. whole training steps (plain, floor, kdloss, builtin) at imgsz 640 with AMP, in what time is left
if (( deadline - SECONDS > 60 )); then
    timeout --kill-after=10 $((deadline - SECONDS)) .venv/bin/python -m benchmarks.train_step --device cuda \
        --imgsz 640 --batch 16 --amp --rounds 3 --json benchmarks/train-step-cuda.json
fi
