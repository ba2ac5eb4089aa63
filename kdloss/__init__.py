"""kdloss: knowledge-distillation losses for dense object detectors, in plain PyTorch.

Feature losses take ``(N, C, H, W)`` tensors (or one per level); logit losses take
:class:`DetectionOutput` head outputs. The maths lives in :mod:`kdloss.functional`.
"""

from kdloss.combine import DistillationLoss
from kdloss.detection import DetectionOutput
from kdloss.nn import BCKD, CWD, L1, L2, LD, MGD, PKD, ChannelAlign, CrossKD, DistillLoss, Mimic
from kdloss.schedules import Schedule

__all__ = [
    "BCKD",
    "CWD",
    "L1",
    "L2",
    "LD",
    "MGD",
    "PKD",
    "ChannelAlign",
    "CrossKD",
    "DetectionOutput",
    "DistillLoss",
    "DistillationLoss",
    "Mimic",
    "Schedule",
]
__version__ = "0.1.0"
