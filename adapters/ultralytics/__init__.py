"""kdloss for ultralytics YOLO (YOLOv8, YOLO11, YOLO26; detect, segment, pose, OBB): ``distill()``, the trainers
and the model."""

from kdloss.adapters.ultralytics.api import distill
from kdloss.adapters.ultralytics.config import FEATURE_LOSSES, LOGIT_LOSSES, DistillConfig
from kdloss.adapters.ultralytics.model import KDDistillationModel
from kdloss.adapters.ultralytics.trainer import (
    DistillationTrainer,
    OBBDistillationTrainer,
    PoseDistillationTrainer,
    SegmentationDistillationTrainer,
    distillation_trainer,
)

__all__ = [
    "FEATURE_LOSSES", "LOGIT_LOSSES", "DistillConfig", "DistillationTrainer", "KDDistillationModel",
    "OBBDistillationTrainer", "PoseDistillationTrainer", "SegmentationDistillationTrainer", "distill",
    "distillation_trainer",
]
