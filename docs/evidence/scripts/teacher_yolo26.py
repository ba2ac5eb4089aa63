"""The YOLO26 teacher of the one-to-one-branch experiment (issue 12): yolo26s on the shapes data, the same
schedule as the shipped yolov8s teacher (60 epochs, batch 8, imgsz 128, seed 0). Run from the repository root."""
from ultralytics import YOLO

YOLO("yolo26s.yaml").train(data="runs/evidence/shapes/data.yaml", epochs=60, imgsz=128, batch=8, device="cpu",
                           workers=2, plots=False, amp=False, project="runs/evidence", name="shapes-yolo26-teacher",
                           exist_ok=True, seed=0, verbose=False)
