"""Localization distillation (Zheng et al., CVPR 2022, "Localization Distillation for Dense Object
Detection", arXiv 2102.12252) on the DFL box distributions of YOLOv8/YOLO11 heads."""

from __future__ import annotations

from torch import Tensor

from kdloss._checks import check_positive, compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair
from kdloss.functional.bckd import resolve_avg_factor
from kdloss.functional.kl import softmax_kl_terms
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.ld import box_kl_fits, ld_box_kl


def ld(student: DetectionOutput, teacher: DetectionOutput, *, temperature: float = 10.0,
       avg_factor: float | Tensor | None = None, impl: str = "auto", check_finite: bool = False) -> Tensor:
    """LD: the student's box distribution of every side matches the teacher's, softened by ``temperature``.

    Per anchor ``(b, a)`` and side ``k`` (left, top, right, bottom), over the ``reg_max`` bins, the term of
    the official ``knowledge_distillation_kl_div_loss`` (HikariTJU/LD, mmdet ``kd_loss.py``: ``kl_div``
    averaged over the bins, times T²)::

        kl_bak = T² / reg_max · Σ_j softmax(t_bak/T)_j · (log softmax(t_bak/T)_j − log softmax(s_bak/T)_j)
        loss   = Σ_{b,a} w_ba · ¼ Σ_k kl_bak / avg_factor,      w_ba = max_c σ(teacher.cls)_bac

    The official head applies it to the assigner's positive anchors, weighted by the student's class score;
    a loss on head outputs alone has no assignment, so kdloss weights every anchor by the teacher's class
    confidence instead (its box distributions are worth copying where it sees an object, and background
    anchors, whose distributions carry no meaning, fade out), the same weight family as BCKD's box term, and
    divides by the same normaliser as BCKD (``avg_factor``; ``None``: ``max(1, Σ_{b,a} max_c p_t)``; the
    ultralytics adapter passes ``target_scores_sum``, or the positive count with ``avg_factor=positives``).
    The teacher and the weights carry no gradient.

    Args:
        student, teacher: :class:`kdloss.DetectionOutput`; ``box`` ``(B, A, 4, reg_max)`` DFL logits with
            ``reg_max > 1``, ``cls`` ``(B, A, nc)`` (the teacher's gives the weights).
        temperature: T (> 0); the official setting is 10.
        avg_factor: the normaliser (a positive scalar), or ``None``.
        impl: ``"eager"`` (this reference), ``"compile"`` (``torch.compile`` of it), ``"fused"`` (on CUDA one
            Triton launch each way, :mod:`kdloss.ops.ld`; elsewhere, and for float64, the compiled build) or
            ``"auto"``
            (fused on the CPU; on CUDA the one measured fastest there, :data:`kdloss.ops.CUDA_AUTO`).
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    """
    check_positive("LD", "temperature", temperature)
    terms = TERMS_IMPLS[resolve_impl("LD", impl, student)]
    check_detection_pair("LD", student, teacher, check_finite=check_finite)
    if student.box.shape[-1] == 1:
        raise ValueError("LD: the heads predict one value per box side (reg_max=1, e.g. YOLO26): there is no "
                         "distribution to distill; use BCKD's box term or L2 instead")
    if student.cls.numel() == 0:
        return zero_loss(student.cls, student.box)
    total, soft_count = terms(student.box, teacher.box, teacher.cls, temperature)
    return total / resolve_avg_factor(avg_factor, soft_count, "LD")


def ld_terms(student_box: Tensor, teacher_box: Tensor, teacher_cls: Tensor, temperature: float
             ) -> tuple[Tensor, Tensor]:
    """(``Σ_{b,a} w_ba · ¼ Σ_k kl_bak``, ``Σ_{b,a} max_c p_t``) on validated, non-empty inputs."""
    dtype = compute_dtype(student_box)
    kl = softmax_kl_terms(teacher_box.detach().to(dtype) / temperature, student_box.to(dtype) / temperature,
                          dim=-1).mean(-1) * temperature**2  # (B, A, 4)
    weights = teacher_cls.detach().to(dtype).sigmoid().amax(-1)  # (B, A)
    return (weights * kl.sum(-1)).sum() / 4, weights.sum()


def ld_terms_fused(student_box: Tensor, teacher_box: Tensor, teacher_cls: Tensor, temperature: float,
                   kernels: str = "auto") -> tuple[Tensor, Tensor]:
    """:func:`ld_terms` with Triton kernels where they fit (:func:`kdloss.ops.ld.box_kl_fits`), else compiled."""
    if box_kl_fits(student_box, teacher_box, teacher_cls, kernels):
        return ld_box_kl(student_box, teacher_box, teacher_cls, temperature)
    return COMPILED_TERMS(student_box, teacher_box, teacher_cls, temperature)


COMPILED_TERMS = LazyCompiled(ld_terms)
TERMS_IMPLS = {"eager": ld_terms, "fused": ld_terms_fused, "compile": COMPILED_TERMS}
