#!/usr/bin/env bash
set -u
cd "$(dirname "$0")/../../.."  # the repository root
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
while pgrep -f run2.sh > /dev/null; do sleep 15; done
.venv/bin/kdloss experiment data=runs/evidence/dense/data.yaml teacher=runs/evidence/dense-teacher/weights/best.pt \
  student=yolov8n.yaml methods=none,bckd+cwd,builtin seeds=[2] epochs=30 imgsz=128 \
  batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/dense-exp
echo RUN4 DENSE DONE
