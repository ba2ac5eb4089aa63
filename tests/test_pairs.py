"""Teacher/student pairs across YOLOv8, YOLO11 and YOLO26: what works with which loss (README's table)."""

from __future__ import annotations

import itertools

import pytest
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel

from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel

FAMILIES = ("yolov8", "yolo11", "yolo26")
REG_MAX = {"yolov8": 16, "yolo11": 16, "yolo26": 1}


def model(yaml: str) -> DetectionModel:
    m = DetectionModel(yaml, nc=6, verbose=False)
    m.args = get_cfg(overrides={"imgsz": 64})
    return m


@pytest.mark.parametrize(("teacher", "student"), list(itertools.product(FAMILIES, FAMILIES)))
def test_every_family_pair(teacher, student):
    t, s = model(f"{teacher}s.yaml"), model(f"{student}n.yaml")
    for feature_loss in ("cwd", "pkd", "mgd"):  # feature losses: every pair (align convs for the channels)
        KDDistillationModel(t, s, DistillConfig(feature_loss=feature_loss, logit_loss="none"))
    if REG_MAX[teacher] == REG_MAX[student]:
        KDDistillationModel(t, s, DistillConfig(feature_loss="cwd", logit_loss="bckd"))
        KDDistillationModel(t, s, DistillConfig(feature_loss="none", logit_loss="l2"))
    else:
        for logit_loss in ("bckd", "l2"):
            with pytest.raises(ValueError, match=f"teacher reg_max={REG_MAX[teacher]} differs from the student's "
                                                 f"{REG_MAX[student]}.*feature losses work across these heads"):
                KDDistillationModel(t, s, DistillConfig(logit_loss=logit_loss))
