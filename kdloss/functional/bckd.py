"""Binary classification knowledge distillation (Yang et al., ICCV 2023, arXiv 2308.14286)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from kdloss._checks import check_positive, compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair, decode_dfl_boxes, generalized_iou


class BCKDParts(NamedTuple):
    """The two terms of BCKD, each already multiplied by its weight and divided by ``avg_factor``."""

    cls: Tensor
    box: Tensor


def bckd_parts(
    student: DetectionOutput,
    teacher: DetectionOutput,
    *,
    cls_weight: float = 1.0,
    box_weight: float = 4.0,
    beta: float = 1.0,
    avg_factor: float | Tensor | None = None,
    check_finite: bool = False,
) -> BCKDParts:
    """BCKD's classification and localisation terms.

    With ``p_t = σ(teacher.cls)`` and ``p_s = σ(student.cls)`` (``(B, A, nc)``)::

        cls = cls_weight · Σ_{b,a,c} BCE_with_logits(student.cls, p_t) · |p_t − p_s|^beta / avg_factor
        box = box_weight · Σ_{b,a} w_ba · (1 − GIoU(box_s, box_t)) / avg_factor,  w_ba = max_c |p_t − p_s|

    Boxes are decoded from the DFL logits (:func:`kdloss.detection.decode_dfl_boxes`). The teacher's
    outputs, ``|p_t − p_s|^beta`` and ``w_ba`` carry no gradient.

    Args:
        student, teacher: :class:`kdloss.DetectionOutput` with ``cls (B, A, nc)``, ``box (B, A, 4, reg_max)``,
            ``anchors (A, 2)`` and ``strides (A,)``.
        avg_factor: the normaliser, e.g. the number of positive anchors. ``None`` uses the teacher's
            soft count of foreground anchors, ``max(1, Σ_{b,a} max_c p_t)``: like a positive count, it
            does not grow with the number of background anchors or classes.
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        :class:`BCKDParts` of two scalar tensors (float32, or float64 for float64 inputs).
    """
    check_positive("BCKD", "beta", beta)
    check_detection_pair("BCKD", student, teacher, need_anchors=True, check_finite=check_finite)
    if student.cls.numel() == 0:
        zero = zero_loss(student.cls, student.box)
        return BCKDParts(zero, zero)
    dtype = compute_dtype(student.cls)
    s_logits = student.cls.to(dtype)
    with torch.no_grad():
        p_t = teacher.cls.detach().to(dtype).sigmoid()
        gap = (p_t - s_logits.sigmoid()).abs()
        avg_factor = _resolve_avg_factor(avg_factor, p_t)
    bce = F.binary_cross_entropy_with_logits(s_logits, p_t, reduction="none")
    cls_loss = (bce * gap.pow(beta)).sum() * cls_weight / avg_factor

    box_s = decode_dfl_boxes(student.box.to(dtype), student.anchors, student.strides)
    with torch.no_grad():
        box_t = decode_dfl_boxes(teacher.box.detach().to(dtype), teacher.anchors, teacher.strides)
    giou = generalized_iou(box_s, box_t)
    box_loss = (gap.amax(-1) * (1.0 - giou)).sum() * box_weight / avg_factor
    return BCKDParts(cls_loss, box_loss)


def bckd(student: DetectionOutput, teacher: DetectionOutput, **kwargs) -> Tensor:
    """BCKD total, ``cls + box`` of :func:`bckd_parts` (same arguments)."""
    parts = bckd_parts(student, teacher, **kwargs)
    return parts.cls + parts.box


def _resolve_avg_factor(avg_factor: float | Tensor | None, p_t: Tensor) -> Tensor:
    if avg_factor is None:
        return p_t.amax(-1).sum().clamp(min=1.0)
    value = torch.as_tensor(avg_factor, dtype=p_t.dtype, device=p_t.device).detach()
    if value.numel() != 1 or not bool(value > 0):
        raise ValueError(f"BCKD: avg_factor must be a positive scalar, got {avg_factor}")
    return value
