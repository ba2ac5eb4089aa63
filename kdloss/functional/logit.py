"""Plain logit matching: L1 and L2 over all raw head outputs."""

from __future__ import annotations

from torch import Tensor

from kdloss._checks import compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair


def l1(student: DetectionOutput, teacher: DetectionOutput, *, check_finite: bool = False) -> Tensor:
    """Mean absolute difference of all raw outputs (class and DFL box logits together).

    ``loss = (Σ|s.cls − t.cls| + Σ|s.box − t.box|) / (B·A·(nc + 4·reg_max))``; the teacher is a constant.
    """
    check_detection_pair("L1", student, teacher, check_finite=check_finite)
    return _mean_over_outputs(student, teacher, power=1)


def l2(student: DetectionOutput, teacher: DetectionOutput, *, check_finite: bool = False) -> Tensor:
    """Mean squared difference of all raw outputs (class and DFL box logits together).

    ``loss = (Σ(s.cls − t.cls)² + Σ(s.box − t.box)²) / (B·A·(nc + 4·reg_max))``; the teacher is a constant.
    """
    check_detection_pair("L2", student, teacher, check_finite=check_finite)
    return _mean_over_outputs(student, teacher, power=2)


def _mean_over_outputs(student: DetectionOutput, teacher: DetectionOutput, power: int) -> Tensor:
    count = student.cls.numel() + student.box.numel()
    if count == 0:
        return zero_loss(student.cls, student.box)
    dtype = compute_dtype(student.cls)
    total = 0.0
    for s, t in ((student.cls, teacher.cls), (student.box, teacher.box)):
        diff = s.to(dtype) - t.detach().to(dtype)
        total = total + (diff.abs() if power == 1 else diff.square()).sum()
    return total / count
