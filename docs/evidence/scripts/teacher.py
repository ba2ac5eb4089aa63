"""A yolov8s teacher as the shipped one is trained (``kdloss demo teacher=train``: batch 8, imgsz 128, seed 0),
for EPOCHS epochs on DATA, into runs/evidence/NAME. Run from the repository root:

    .venv/bin/python docs/evidence/scripts/teacher.py runs/evidence/shapes/data.yaml shapes-teacher200 200
"""
import sys

from kdloss.adapters.ultralytics.demo import train_teacher

data, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(train_teacher(data, "runs/evidence", name, epochs=epochs))
