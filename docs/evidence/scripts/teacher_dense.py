"""The dense dataset's yolov8s teacher, trained as the shipped shapes teacher was (60 epochs, batch 8, seed 0).

Run from the repository root after writing the data with
``make_shapes_dataset("runs/evidence/dense", train=256, val=64, test=64, imgsz=128, kind="dense")``.
"""

from pathlib import Path

from ultralytics import YOLO

YOLO("yolov8s.yaml").train(data="runs/evidence/dense/data.yaml", epochs=60, imgsz=128, batch=8, device="cpu",
                           workers=2, plots=False, amp=False, project=str(Path("runs/evidence").resolve()),
                           name="dense-teacher", exist_ok=True, seed=0, verbose=False)
