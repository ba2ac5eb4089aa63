"""kdloss for ultralytics YOLO detection (YOLOv8, YOLO11, YOLO26): ``distill()``, the trainer and model."""

from kdloss.adapters.ultralytics.api import distill
from kdloss.adapters.ultralytics.config import FEATURE_LOSSES, LOGIT_LOSSES, DistillConfig
from kdloss.adapters.ultralytics.model import KDDistillationModel
from kdloss.adapters.ultralytics.trainer import DistillationTrainer

__all__ = ["FEATURE_LOSSES", "LOGIT_LOSSES", "DistillConfig", "DistillationTrainer", "KDDistillationModel", "distill"]
