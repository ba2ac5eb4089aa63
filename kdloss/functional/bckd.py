"""Binary classification knowledge distillation (Yang et al., ICCV 2023, arXiv 2308.14286)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdloss._checks import check_positive, compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair, decode_dfl_boxes, generalized_iou
from kdloss.functional.parts import ClassBoxParts
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.bckd import bckd_terms_fused

BCKDParts = ClassBoxParts  # BCKD's two terms (one definition for both class-and-box losses)


def bckd_parts(
    student: DetectionOutput,
    teacher: DetectionOutput,
    *,
    cls_weight: float = 1.0,
    box_weight: float = 4.0,
    beta: float = 1.0,
    avg_factor: float | Tensor | None = None,
    impl: str = "auto",
    check_finite: bool = False,
) -> BCKDParts:
    """BCKD's classification and localisation terms.

    With ``p_t = σ(teacher.cls)`` and ``p_s = σ(student.cls)`` (``(B, A, nc)``)::

        cls = cls_weight · Σ_{b,a,c} BCE_with_logits(student.cls, p_t) · |p_t − p_s|^beta / avg_factor
        box = box_weight · Σ_{b,a} w_ba · (1 − GIoU(box_s, box_t)) / avg_factor,  w_ba = max_c |p_t − p_s|

    Boxes are decoded from the DFL logits (:func:`kdloss.detection.decode_dfl_boxes`). Gradients follow
    the official code (TinyTigerPan/BCKD, ``mmdet/models/losses/kd_loss.py`` ``novel_kd_loss`` and
    ``mmdet/models/dense_heads/ld_head.py``): the class term's weight ``|p_t − p_s|^beta`` is differentiated
    through ``p_s`` (the official ``score = pred.sigmoid()`` is not detached), the box weight ``w_ba`` and
    everything of the teacher carry no gradient. Where ``p_t == p_s`` exactly the weight's gradient is taken
    as 0 (autograd's ``pow`` would give NaN there for beta < 1; for beta ≥ 1 they agree).

    Args:
        student, teacher: :class:`kdloss.DetectionOutput` with ``cls (B, A, nc)``, ``box (B, A, 4, reg_max)``,
            ``anchors (A, 2)`` and ``strides (A,)``.
        avg_factor: the normaliser. The official code divides both terms by the assigner's number of
            positive anchors; in ultralytics training pass the detection loss's ``target_scores_sum`` (the
            kdloss adapter does by default; ``avg_factor=positives`` there passes the positive count).
            ``None``, for callers without an assigner, uses the teacher's soft foreground count
            ``max(1, Σ_{b,a} max_c p_t)``; every anchor adds its ``max_c p_t``, so background anchors add
            their (small) teacher scores and the count grows with the image size.
        impl: ``"eager"`` (:func:`bckd_terms`), ``"fused"`` (:mod:`kdloss.ops.bckd`: class term as one
            autograd Function, box term as one with a hand-written gradient), ``"compile"`` or ``"auto"``
            (fused on the CPU; on CUDA the one measured fastest there, :data:`kdloss.ops.CUDA_AUTO`).
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        :class:`BCKDParts` of two scalar tensors (float32, or float64 for float64 inputs).
    """
    check_positive("BCKD", "beta", beta)
    terms = TERMS_IMPLS[resolve_impl("BCKD", impl, student)]
    check_detection_pair("BCKD", student, teacher, need_anchors=True, check_finite=check_finite)
    if student.cls.numel() == 0:
        zero = zero_loss(student.cls, student.box)
        return BCKDParts(zero, zero)
    cls_sum, box_sum, soft_count = terms(student.cls, teacher.cls, student.box, teacher.box, student.anchors,
                                         student.strides, beta)
    norm = resolve_avg_factor(avg_factor, soft_count)
    return BCKDParts(cls_sum * (cls_weight / norm), box_sum * (box_weight / norm))


def bckd_terms(student_cls: Tensor, teacher_cls: Tensor, student_box: Tensor, teacher_box: Tensor,
               anchors: Tensor, strides: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Un-normalised BCKD sums on validated, non-empty inputs: (class term, box term, ``Σ_{b,a} max_c p_t``).

    The reference for the fused and compiled builds; see :func:`bckd_parts` for the formulas.
    """
    dtype = compute_dtype(student_cls)
    s_logits = student_cls.to(dtype)
    p_t = teacher_cls.detach().to(dtype).sigmoid()
    cls_sum, gap = soft_label_class_term(s_logits, p_t, beta)
    box_s = decode_dfl_boxes(student_box.to(dtype), anchors, strides)
    with torch.no_grad():
        box_t = decode_dfl_boxes(teacher_box.detach().to(dtype), anchors, strides)
    box_sum = (gap.detach().amax(-1) * (1.0 - generalized_iou(box_s, box_t))).sum()
    return cls_sum, box_sum, p_t.amax(-1).sum()


def soft_label_class_term(logits: Tensor, p_t: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """``(Σ BCE_with_logits(logits, p_t) · |p_t − σ(logits)|^beta, |p_t − σ(logits)|)``: the quality-focal
    soft-label class term that BCKD and CrossKD share, with the gap (the weight's base) differentiated, as in
    the official ``novel_kd_loss``. ``logits`` and ``p_t`` (the teacher's probabilities, no gradient) are
    ``(B, A, nc)`` in the compute dtype."""
    gap = (p_t - logits.sigmoid()).abs()
    bce = F.binary_cross_entropy_with_logits(logits, p_t, reduction="none")
    return (bce * _gap_power(gap, beta)).sum(), gap


def _gap_power(gap: Tensor, beta: float) -> Tensor:
    """``gap^beta`` whose gradient is 0 where ``gap == 0`` (autograd's ``pow`` gives NaN there for beta < 1;
    for beta ≥ 1 both agree)."""
    positive = gap > 0
    return torch.where(positive, torch.where(positive, gap, 1.0).pow(beta), 0.0)


def bckd(student: DetectionOutput, teacher: DetectionOutput, **kwargs) -> Tensor:
    """BCKD total, ``cls + box`` of :func:`bckd_parts` (same arguments)."""
    parts = bckd_parts(student, teacher, **kwargs)
    return parts.cls + parts.box


def resolve_avg_factor(avg_factor: float | Tensor | None, soft_count: Tensor, loss: str = "BCKD") -> Tensor:
    """The normaliser of BCKD and LD: ``avg_factor`` (a positive scalar) or, for ``None``, ``max(1, soft_count)``;
    detached, in ``soft_count``'s dtype and device. A number or a CPU tensor that is not positive is a
    ``ValueError``; a CUDA tensor is not inspected (that would wait for the GPU every step): ultralytics'
    ``target_scores_sum`` is clamped to at least 1."""
    if avg_factor is None:
        return soft_count.detach().clamp(min=1.0)
    value = torch.as_tensor(avg_factor, dtype=soft_count.dtype, device=soft_count.device).detach()
    on_host = not isinstance(avg_factor, Tensor) or avg_factor.device.type == "cpu"
    if value.numel() != 1 or (on_host and not float(avg_factor) > 0):
        raise ValueError(f"{loss}: avg_factor must be a positive scalar, got {avg_factor}")
    return value.reshape(())


TERMS_IMPLS = {"eager": bckd_terms, "fused": bckd_terms_fused, "compile": LazyCompiled(bckd_terms)}
