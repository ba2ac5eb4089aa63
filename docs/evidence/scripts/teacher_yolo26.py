"""The YOLO26 teacher of the one-to-one-branch experiment (issue 12): yolo26s on the shapes data, the same
schedule as the shipped yolov8s teacher (60 epochs, batch 8, imgsz 128, seed 0). Run from the repository root;
it writes runs/evidence/shapes-yolo26-teacher (an absolute project: ultralytics puts a relative one under
runs/detect/)."""
from pathlib import Path

from ultralytics import YOLO

YOLO("yolo26s.yaml").train(data="runs/evidence/shapes/data.yaml", epochs=60, imgsz=128, batch=8, device="cpu",
                           workers=2, plots=False, amp=False, project=str(Path("runs/evidence").resolve()),
                           name="shapes-yolo26-teacher", exist_ok=True, seed=0, verbose=False)
