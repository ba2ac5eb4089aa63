"""A yolov8s teacher as the shipped one is trained (``kdloss demo teacher=train``: batch 8, imgsz 128, seed 0),
for EPOCHS epochs on DATA, into runs/evidence/NAME. Run from the repository root:

    .venv/bin/python docs/evidence/scripts/teacher.py runs/evidence/shapes/data.yaml shapes-teacher200 200

(an absolute project: ultralytics puts a relative one under runs/detect/)."""
import sys
from pathlib import Path

from ultralytics import YOLO

data, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
YOLO("yolov8s.yaml").train(data=data, epochs=epochs, imgsz=128, batch=8, device="cpu", workers=2, plots=False,
                           amp=False, project=str(Path("runs/evidence").resolve()), name=name, exist_ok=True,
                           seed=0, verbose=False)
