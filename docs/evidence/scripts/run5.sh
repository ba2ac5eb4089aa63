#!/usr/bin/env bash
set -u
cd "$(dirname "$0")/../../.."  # the repository root
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
.venv/bin/kdloss experiment data=runs/evidence/shapes/data.yaml teacher=assets/shapes-yolov8s-teacher.pt \
  student=yolov8n.yaml methods=$1 seeds=[2] epochs=30 imgsz=128 \
  batch=32 workers=2 device=cpu amp=False plots=False project=runs/evidence/shapes-exp
echo RUN5 $1 DONE
