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
                                                 f"{REG_MAX[student]}.*feature losses and logit_loss=crosskd work "
                                                 "across these heads"):
                KDDistillationModel(t, s, DistillConfig(logit_loss=logit_loss))


@pytest.mark.parametrize(("teacher", "student"), [("yolov8", "yolo26"), ("yolo26", "yolov8"), ("yolo11", "yolo26")])
def test_crosskd_works_across_box_formats_and_class_counts(teacher, student):
    """CrossKD compares the teacher's head with itself (run on the student's features): reg_max 16 against 1
    and other class counts work; a logit loss that compares the two heads is still refused."""
    import torch

    t = DetectionModel(f"{teacher}s.yaml", nc=3, verbose=False)
    t.args = get_cfg(overrides={"imgsz": 64})
    s = model(f"{student}n.yaml")  # 6 classes
    distilled = KDDistillationModel(t, s, DistillConfig(feature_loss="none", logit_loss="crosskd"))
    distilled.train()
    batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[1.0], [4.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.2], [0.4, 0.4, 0.2, 0.3]])}
    loss, items = distilled.loss(batch)
    assert torch.isfinite(loss).all() and items["kdxbx_loss"] > 0
    with pytest.raises(ValueError, match=r"teacher predicts 3 classes but the student 6: logit_loss=bckd needs the "
                                         r"same classes .* or use logit_loss=crosskd"):
        KDDistillationModel(t, s, DistillConfig(feature_loss="none", logit_loss="bckd+crosskd"))
