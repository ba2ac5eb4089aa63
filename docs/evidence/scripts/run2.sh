#!/usr/bin/env bash
# After the dense teacher: the default recipe vs baseline vs builtin on the dense dataset (no retuning),
# (As first run, these passed seeds=$seed, which is a count: seeds 0 and 1 only; run3/run4 added seed 2.)
# then the new losses on the shapes dataset. Seed-major, resumable.
set -u
cd "$(dirname "$0")/../../.."  # the repository root
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
while pgrep -f teacher_dense.py > /dev/null; do sleep 20; done  # the dense teacher first
for seed in 0 1 2; do
  .venv/bin/kdloss experiment data=runs/evidence/dense/data.yaml teacher=runs/evidence/dense-teacher/weights/best.pt \
    student=yolov8n.yaml methods=none,bckd+cwd,builtin seeds=[$seed] epochs=30 imgsz=128 \
    batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/dense-exp
done
for seed in 0 1 2; do
  .venv/bin/kdloss experiment data=runs/evidence/shapes/data.yaml teacher=assets/shapes-yolov8s-teacher.pt \
    student=yolov8n.yaml methods=pkd,bckd+ld seeds=[$seed] epochs=30 imgsz=128 \
    batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/shapes-exp
done
echo SWEEP2 DONE
