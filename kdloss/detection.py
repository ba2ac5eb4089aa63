"""Dense-detector head outputs in one framework-free container, and the box maths logit losses need."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdloss._checks import check_same_device, check_tensor


@dataclass
class DetectionOutput:
    """Raw outputs of an anchor-point detection head (YOLOv8-style, DFL box regression).

    Attributes:
        cls: ``(B, A, num_classes)`` class logits (before the sigmoid).
        box: ``(B, A, 4, reg_max)`` DFL logits for the left, top, right and bottom distances.
        anchors: ``(A, 2)`` anchor centres ``(x, y)`` in stride units (grid cell + 0.5), or ``None``.
        strides: ``(A,)`` stride of each anchor in pixels, or ``None``.

    ``A`` counts the anchors of all levels together. ``anchors`` and ``strides`` are only needed by
    losses that decode boxes (BCKD); L1/L2 compare the raw logits and ignore them.
    """

    cls: Tensor
    box: Tensor
    anchors: Tensor | None = None
    strides: Tensor | None = None

    @property
    def num_anchors(self) -> int:
        return self.cls.shape[1]


def check_detection_pair(
    loss: str,
    student: DetectionOutput,
    teacher: DetectionOutput,
    *,
    need_anchors: bool = False,
    check_finite: bool = False,
) -> None:
    """Validate a student/teacher pair of ``DetectionOutput``s; raise ``ValueError`` with both shapes."""
    for side, out in (("student", student), ("teacher", teacher)):
        if not isinstance(out, DetectionOutput):
            raise TypeError(f"{loss}: {side} must be a kdloss.DetectionOutput, got {type(out).__name__}")
        check_tensor(loss, f"{side}.cls", out.cls, check_finite=check_finite)
        check_tensor(loss, f"{side}.box", out.box, check_finite=check_finite)
        if out.cls.dim() != 3:
            raise ValueError(f"{loss}: {side}.cls must be (B, A, num_classes), got {tuple(out.cls.shape)}")
        if out.box.dim() != 4 or out.box.shape[2] != 4:
            raise ValueError(f"{loss}: {side}.box must be (B, A, 4, reg_max), got {tuple(out.box.shape)}")
        if out.box.shape[:2] != out.cls.shape[:2]:
            raise ValueError(
                f"{loss}: {side}.box and {side}.cls disagree on (B, A): "
                f"{tuple(out.box.shape)} vs {tuple(out.cls.shape)}"
            )
    for field in ("cls", "box"):
        s, t = getattr(student, field), getattr(teacher, field)
        check_same_device(loss, field, s, t)
        if s.shape != t.shape:
            anchors = (f" ({s.shape[1]} anchors vs {t.shape[1]}: other feature levels, strides or image sizes)"
                       if s.dim() > 1 and t.dim() > 1 and s.shape[1] != t.shape[1] else "")
            raise ValueError(
                f"{loss}: student and teacher {field} shapes differ: {tuple(s.shape)} vs {tuple(t.shape)}{anchors}"
            )
    if need_anchors:
        a = student.num_anchors
        for side, out in (("student", student), ("teacher", teacher)):
            if out.anchors is None or out.strides is None:
                raise ValueError(f"{loss}: {side} needs anchors (A, 2) and strides (A,) to decode boxes")
            if out.anchors.shape != (a, 2) or out.strides.shape != (a,):
                raise ValueError(
                    f"{loss}: {side}.anchors must be ({a}, 2) and strides ({a},), got "
                    f"{tuple(out.anchors.shape)} and {tuple(out.strides.shape)}"
                )
            for name in ("anchors", "strides"):
                tensor = getattr(out, name)
                if tensor.device != out.cls.device:
                    raise ValueError(f"{loss}: {side}.{name} is on {tensor.device} but {side}.cls on {out.cls.device}")


def decode_dfl_boxes(box_logits: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
    """Decode DFL logits into ``xyxy`` boxes in pixels.

    Args:
        box_logits: ``(B, A, 4, reg_max)`` logits over the distance bins ``0 .. reg_max - 1``. With
            ``reg_max == 1`` (heads without DFL, e.g. YOLO26) the single value is the distance itself.
        anchors: ``(A, 2)`` anchor centres in stride units.
        strides: ``(A,)`` pixels per stride unit.

    Returns:
        ``(B, A, 4)`` boxes ``(x1, y1, x2, y2)``: the expected distance
        ``d = Σ_k softmax(logits)_k · k`` gives ``x1 = (ax − d_left)·stride`` and so on.
    """
    return boxes_from_distances(dfl_distances(box_logits)[0], anchors, strides)


def dfl_distances(box_logits: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(B, A, 4, reg_max)`` DFL logits → the expected distances ``d = Σ_k softmax(logits)_k · k``, ``(B, A, 4)``,
    and the softmax ``(B, A, 4, reg_max)`` (``None`` for ``reg_max == 1``, where the logit is the distance)."""
    if box_logits.shape[-1] == 1:
        return box_logits[..., 0], None
    bins = torch.arange(box_logits.shape[-1], dtype=box_logits.dtype, device=box_logits.device)
    probs = box_logits.softmax(-1)
    return (probs * bins).sum(-1), probs


def boxes_from_distances(distances: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
    """``(B, A, 4)`` (left, top, right, bottom) distances in stride units → ``(B, A, 4)`` ``xyxy`` pixels."""
    anchors = anchors.to(distances.dtype)
    top_left = anchors - distances[..., :2]
    bottom_right = anchors + distances[..., 2:]
    return torch.cat((top_left, bottom_right), -1) * strides.to(distances.dtype)[:, None]


def generalized_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Elementwise GIoU (Rezatofighi et al., CVPR 2019) of ``(..., 4)`` ``xyxy`` boxes; returns ``(...)``."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]).clamp(min=0) * (boxes1[..., 3] - boxes1[..., 1]).clamp(min=0)
    area2 = (boxes2[..., 2] - boxes2[..., 0]).clamp(min=0) * (boxes2[..., 3] - boxes2[..., 1]).clamp(min=0)
    inter_wh = (torch.minimum(boxes1[..., 2:], boxes2[..., 2:]) - torch.maximum(boxes1[..., :2], boxes2[..., :2]))
    inter = inter_wh.clamp(min=0).prod(-1)
    union = area1 + area2 - inter + eps
    hull_wh = torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) - torch.minimum(boxes1[..., :2], boxes2[..., :2])
    hull = hull_wh.clamp(min=0).prod(-1) + eps
    return inter / union - (hull - union) / hull
