#!/usr/bin/env bash
# Evidence sweep on the built-in shapes dataset, seed-major so that paired results accumulate.
# (As first run, these passed seeds=$seed, which is a count: seeds 0 and 1 only; run3/run4 added seed 2.)
set -u
cd "$(dirname "$0")/../../.."  # the repository root
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
.venv/bin/python -c "from kdloss.adapters.ultralytics.data import make_shapes_dataset as m; print(m('runs/evidence/shapes', train=256, val=64, test=64, imgsz=128))"
for seed in 0 1 2; do
  .venv/bin/kdloss experiment data=runs/evidence/shapes/data.yaml teacher=assets/shapes-yolov8s-teacher.pt \
    student=yolov8n.yaml methods=none,bckd+cwd,builtin,bckd,cwd,cwd:feature_weight=10,l2 seeds=[$seed] epochs=30 imgsz=128 \
    batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/shapes-exp
done
echo SWEEP1 DONE
