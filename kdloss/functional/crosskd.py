"""Cross-head knowledge distillation (Wang et al., CVPR 2024, "CrossKD: Cross-Head Knowledge Distillation for
Object Detection", arXiv 2306.11369): the loss between the *crossed* predictions (the student's intermediate
head features run through the rest of the teacher's head) and the teacher's own predictions."""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import check_positive, compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair, decode_dfl_boxes, generalized_iou
from kdloss.functional.bckd import resolve_avg_factor, soft_label_class_term
from kdloss.functional.kl import softmax_kl_terms
from kdloss.functional.parts import ClassBoxParts
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.bckd import BCKDBoxFunction, BCKDClassFunction
from kdloss.ops.ld import BoxKLFunction, box_kl_fits
from kdloss.ops.triton_levels import one_launch_fits

CrossKDParts = ClassBoxParts  # CrossKD's two terms (one definition for both class-and-box losses)


def crosskd_parts(
    crossed: DetectionOutput,
    teacher: DetectionOutput,
    *,
    cls_weight: float = 1.0,
    kl_weight: float = 3.0,
    giou_weight: float = 2.0,
    beta: float = 1.0,
    temperature: float = 1.0,
    avg_factor: float | Tensor | None = None,
    impl: str = "auto",
    check_finite: bool = False,
) -> CrossKDParts:
    """CrossKD's classification and box terms on crossed predictions.

    ``crossed`` holds the predictions of the teacher's head layers run on the student's intermediate head
    features (the crossing itself belongs to the detector; the kdloss ultralytics adapter does it for
    YOLOv8/YOLO11/YOLO26 Detect heads, :class:`kdloss.CrossKD` aligns the channels). With
    ``p_t = σ(teacher.cls)``, ``p̂ = σ(crossed.cls)`` (``(B, A, nc)``) and the teacher's top score per anchor
    ``w_ba = max_c p_t`` (the paper's region weight for regression, detached)::

        cls = cls_weight · Σ_{b,a,c} BCE_with_logits(crossed.cls, p_t) · |p_t − p̂|^beta / avg_factor
        kl  = kl_weight · Σ_{b,a} w_ba · ¼ Σ_k T² · Σ_j q_t,bakj · (log q_t,bakj − log q̂_bakj) / Σ_{b,a} w_ba
        box = kl + giou_weight · Σ_{b,a} w_ba · (1 − GIoU(box̂, box_t)) / Σ_{b,a} w_ba

    where ``q = softmax(box logits / T)`` over the ``reg_max`` bins of side ``k`` and ``box̂``, ``box_t`` are
    the decoded boxes (:func:`kdloss.detection.decode_dfl_boxes`). The class term is the quality-focal
    soft-label loss over every anchor (as BCKD's class term; beta 1, normalised by the detection loss's
    positive count: pass ``target_scores_sum`` as ``avg_factor``; ``None`` uses ``max(1, Σ w)``). The box
    term follows the paper's GFL setting, the head closest to YOLOv8's DFL boxes: KL of the bin
    distributions (T = 1, summed over bins) plus GIoU of the decoded boxes, both weighted by the teacher's
    top class score and divided by the sum of those weights; the weights 1 / 3 / 2 are that setting's.
    Heads without distributions (``reg_max == 1``, YOLO26) have no KL term: the box term is the GIoU part.
    Gradients reach ``crossed`` only (through ``|p_t − p̂|^beta`` too, as in quality focal loss); the teacher
    and the weights carry none.

    Args:
        crossed, teacher: :class:`kdloss.DetectionOutput` with ``cls (B, A, nc)``, ``box (B, A, 4, reg_max)``,
            ``anchors (A, 2)`` and ``strides (A,)``.
        avg_factor: normaliser of the class term (a positive scalar), or ``None``.
        impl: ``"eager"`` (this reference), ``"compile"`` (``torch.compile`` of it), ``"fused"`` (on CUDA
            kdloss's Triton kernels for the class term and the KL, :func:`crosskd_terms_fused`; elsewhere the
            compiled build) or ``"auto"``
            (fused on the CPU; on CUDA the one measured fastest there, :data:`kdloss.ops.CUDA_AUTO`).
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        :class:`CrossKDParts` of two scalar tensors (float32, or float64 for float64 inputs); zeros for an
        empty batch.
    """
    check_positive("CrossKD", "beta", beta)
    check_positive("CrossKD", "temperature", temperature)
    terms = TERMS_IMPLS[resolve_impl("CrossKD", impl, crossed)]
    check_detection_pair("CrossKD", crossed, teacher, need_anchors=True, check_finite=check_finite)
    if crossed.cls.numel() == 0:
        zero = zero_loss(crossed.cls, crossed.box)
        return CrossKDParts(zero, zero)
    cls_sum, kl_sum, giou_sum, weight_sum = terms(crossed.cls, teacher.cls, crossed.box, teacher.box,
                                                  crossed.anchors, crossed.strides, beta, temperature)
    weight_sum = weight_sum.detach().clamp(min=torch.finfo(weight_sum.dtype).tiny)
    box = (kl_sum * kl_weight + giou_sum * giou_weight) / weight_sum
    return CrossKDParts(cls_sum * (cls_weight / resolve_avg_factor(avg_factor, weight_sum, "CrossKD")), box)


def crosskd_terms(crossed_cls: Tensor, teacher_cls: Tensor, crossed_box: Tensor, teacher_box: Tensor,
                  anchors: Tensor, strides: Tensor, beta: float, temperature: float
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Un-normalised sums on validated, non-empty inputs: (class term, Σ w·¼Σ_k KL, Σ w·(1 − GIoU), Σ w).

    The KL sum is zero for ``reg_max == 1``. See :func:`crosskd_parts` for the formulas.
    """
    dtype = compute_dtype(crossed_cls)
    logits = crossed_cls.to(dtype)
    p_t = teacher_cls.detach().to(dtype).sigmoid()
    cls_sum, _ = soft_label_class_term(logits, p_t, beta)
    weights = p_t.amax(-1)  # (B, A)
    box_c, box_t = crossed_box.to(dtype), teacher_box.detach().to(dtype)
    if box_c.shape[-1] > 1:
        kl = softmax_kl_terms(box_t / temperature, box_c / temperature, dim=-1).sum(-1) * temperature**2  # (B, A, 4)
        kl_sum = (weights * kl.sum(-1)).sum() / 4
    else:
        kl_sum = box_c.new_zeros(())
    decoded_c = decode_dfl_boxes(box_c, anchors, strides)
    with torch.no_grad():
        decoded_t = decode_dfl_boxes(box_t, anchors, strides)
    giou_sum = (weights * (1.0 - generalized_iou(decoded_c, decoded_t))).sum()
    return cls_sum, kl_sum, giou_sum, weights.sum()


def crosskd(crossed: DetectionOutput, teacher: DetectionOutput, **kwargs) -> Tensor:
    """CrossKD total, ``cls + box`` of :func:`crosskd_parts` (same arguments)."""
    parts = crosskd_parts(crossed, teacher, **kwargs)
    return parts.cls + parts.box


def crosskd_terms_fused(crossed_cls: Tensor, teacher_cls: Tensor, crossed_box: Tensor, teacher_box: Tensor,
                        anchors: Tensor, strides: Tensor, beta: float, temperature: float, kernels: str = "auto"
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`crosskd_terms` from kdloss's kernels where the Triton ones fit (CUDA; :func:`kdloss.ops.ld.box_kl_fits`):
    the class term and the weights ``max_c p_t`` from BCKD's class kernel, the KL from LD's (each one launch each
    way), the GIoU sum from BCKD's compiled box Function. Elsewhere, and for ``reg_max == 1``, the compiled
    build of :func:`crosskd_terms`."""
    if (crossed_box.shape[-1] == 1 or not box_kl_fits(crossed_box, teacher_box, teacher_cls, kernels)
            or not one_launch_fits([crossed_cls, crossed_box])):  # the class kernel takes crossed_cls too
        return COMPILED_TERMS(crossed_cls, teacher_cls, crossed_box, teacher_box, anchors, strides, beta, temperature)
    b, a, nc = crossed_cls.shape
    cls_sum, _, weights = BCKDClassFunction.apply(crossed_cls.reshape(b * a, nc),
                                                  teacher_cls.detach().reshape(b * a, nc), beta, "triton")
    bins = crossed_box.shape[-1]
    kl_sum, _ = BoxKLFunction.apply(crossed_box.reshape(b * a, 4, bins), teacher_box.detach().reshape(b * a, 4, bins),
                                    teacher_cls.detach().reshape(b * a, nc), temperature, temperature**2 / 4)
    giou_sum = BCKDBoxFunction.apply(crossed_box, teacher_box.detach(), anchors, strides, weights.view(b, a), kernels)
    return cls_sum, kl_sum, giou_sum, weights.sum()


COMPILED_TERMS = LazyCompiled(crosskd_terms)
TERMS_IMPLS = {"eager": crosskd_terms, "fused": crosskd_terms_fused, "compile": COMPILED_TERMS}
