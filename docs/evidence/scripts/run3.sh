#!/usr/bin/env bash
# Seed 2 (run1/run2 passed seeds=N, which is a count: they trained seeds 0 and 1 only).
set -u
cd "$(dirname "$0")/../../.."  # the repository root
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
while pgrep -f run1.sh > /dev/null; do sleep 15; done
.venv/bin/kdloss experiment data=runs/evidence/shapes/data.yaml teacher=assets/shapes-yolov8s-teacher.pt \
  student=yolov8n.yaml methods=none,bckd+cwd,builtin,bckd,cwd seeds=[2] epochs=30 imgsz=128 \
  batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/shapes-exp
echo RUN3 SHAPES DONE
