"""Fused BCKD: the class term and the box term each as one custom autograd Function.

Class term over ``(R, nc)`` rows (``R = B·A`` anchors), with ``p_t = σ(t)``, ``p_s = σ(s)``,
``d = p_s − p_t`` and ``w = |d|^beta``::

    Σ BCE_with_logits(s, p_t) · w
    ∂/∂s = d · w + BCE(s, p_t) · beta · (w / d) · p_s (1 − p_s)        (second term 0 where d = 0)

The weight ``w`` is differentiated, as in the official ``novel_kd_loss`` (TinyTigerPan/BCKD,
``mmdet/models/losses/kd_loss.py``: ``score = pred.sigmoid()`` is not detached), like the modulating
factor of Quality Focal Loss. One pass also gives the per-anchor ``max_c |p_t − p_s|`` (the box weights,
detached as in the official code) and ``max_c p_t`` (the default normaliser). On the CPU (inductor or
plain torch) forward also writes the unscaled gradient while the row is in cache, and backward scales it;
with Triton (CUDA) forward keeps nothing but the inputs and backward recomputes.
Box term: one compiled function decodes both boxes' DFL logits, takes GIoU and the weighted sum, and
writes the gradient from the formulas of :func:`giou_and_grad`; backward only scales it.
Reference: :func:`kdloss.functional.bckd.bckd_parts`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import compute_dtype
from kdloss.detection import boxes_from_distances, decode_dfl_boxes, dfl_distances, generalized_iou
from kdloss.ops import select_kernels, triton_kernels
from kdloss.ops._compile import LazyCompiled


def _sigmoid_softplus_and_slope(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``σ(x)``, ``log(1 + exp(−|x|))`` and ``σ'(x) = σ(x)(1 − σ(x)) = e / (1 + e)²`` from one exponential
    ``e = exp(−|x|)``.

    ``log1p(e)`` is computed as ``log(u) · e / (u − 1)`` with ``u = 1 + e`` (Goldberg's correction, exact to
    a few ulp; ``e`` itself where ``u`` rounds to 1), because torch's vectorised CPU ``log1p`` can be an
    order of magnitude slower than ``log`` (``python -m benchmarks.unary``) and would dominate the class term.
    """
    e = torch.exp(-x.abs())
    u = 1.0 + e
    softplus = torch.where(u == 1.0, e, torch.log(u) * (e / (u - 1.0)))
    return torch.where(x >= 0, 1.0, e) / u, softplus, e / (u * u)


def _weight(gap: Tensor, beta: float) -> Tensor:
    return gap if beta == 1.0 else gap.pow(beta)  # the common beta = 1 needs no pow


def _cls_elementwise(student: Tensor, teacher: Tensor, beta: float, with_grad: bool):
    """Per element of ``(R, nc)`` logits: ``BCE · w``, ``|p_t − p_s|``, ``p_t`` and (``with_grad``) the gradient
    of ``BCE · w`` for the student, all in the compute dtype. ``BCE_with_logits(x, p) = max(x, 0) − x·p +
    log(1 + exp(−|x|))`` and ``σ'(x) = e / (1 + e)²`` share one exponential ``e = exp(−|x|)`` with ``σ(x)``."""
    dtype = compute_dtype(student)
    x = student.to(dtype)
    p_t = torch.sigmoid(teacher.to(dtype))
    p_s, softplus, slope = _sigmoid_softplus_and_slope(x)
    diff = p_s - p_t
    gap = diff.abs()
    w = _weight(gap, beta)
    bce = x.clamp(min=0) - x * p_t + softplus
    if not with_grad:
        return bce * w, gap, p_t, None
    # d w / d p_s = beta · |d|^(beta − 1) · sign(d) = beta · w / d (0 where d = 0: no NaN for beta < 1)
    dw = torch.sign(diff) if beta == 1.0 else torch.where(gap > 0, beta * w / diff, 0.0)
    return bce * w, gap, p_t, diff * w + bce * dw * slope


def bckd_cls_forward(student: Tensor, teacher: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(R, nc)`` logits → (class-term sum, ``max_c |p_t − p_s|`` ``(R,)``, ``max_c p_t`` ``(R,)``)."""
    loss, gap, p_t, _ = _cls_elementwise(student, teacher, beta, with_grad=False)
    return loss.sum(), gap.amax(1), p_t.amax(1)


def bckd_cls_value_and_grad(student: Tensor, teacher: Tensor, beta: float
                            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`bckd_cls_forward` plus the unscaled gradient ``(R, nc)`` of the sum for the student (compute dtype)."""
    loss, gap, p_t, grad = _cls_elementwise(student, teacher, beta, with_grad=True)
    return loss.sum(), gap.amax(1), p_t.amax(1), grad


def bckd_cls_backward(student: Tensor, teacher: Tensor, beta: float, factor: Tensor) -> Tensor:
    """``factor ·`` the class term's gradient, in the student's dtype: the torch twin of the Triton backward."""
    grad = _cls_elementwise(student.to(factor.dtype), teacher, beta, with_grad=True)[3]
    return (grad * factor).to(student.dtype)


def _d_min(a: Tensor, b: Tensor) -> Tensor:
    """``∂ min(a, b) / ∂a`` as torch defines it: 1, 0 or ½ at a tie."""
    return torch.where(a < b, 1.0, torch.where(a == b, 0.5, 0.0))


def giou_and_grad(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> tuple[Tensor, Tensor]:
    """:func:`kdloss.detection.generalized_iou` of ``(..., 4)`` ``xyxy`` boxes and its gradient with respect
    to ``boxes1``, ``(...)`` and ``(..., 4)``, written out with torch's conventions at the kinks (clamp
    stops the gradient at 0, ``minimum``/``maximum`` split it at a tie). Those are torch 2.14's, the pinned
    version; torch 2.11's clamp lets the gradient through at exactly 0, so there autograd through
    :func:`generalized_iou` differs from this at zero-size boxes and intersections (a set of measure zero).

    With ``G = inter/union − (hull − union)/hull`` and ``union = area1 + area2 − inter + eps``::

        ∂G/∂inter = 1/union + inter/union² − 1/hull,   ∂G/∂area1 = 1/hull − inter/union²,
        ∂G/∂hull = −union/hull²
    """
    lo1, hi1, lo2, hi2 = boxes1[..., :2], boxes1[..., 2:], boxes2[..., :2], boxes2[..., 2:]
    size1, size2 = hi1 - lo1, hi2 - lo2
    inter_size = torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)
    hull_size = torch.maximum(hi1, hi2) - torch.minimum(lo1, lo2)
    size1_c, inter_c, hull_c = size1.clamp(min=0), inter_size.clamp(min=0), hull_size.clamp(min=0)
    area1 = size1_c[..., 0] * size1_c[..., 1]
    area2 = size2.clamp(min=0).prod(-1)
    inter = inter_c[..., 0] * inter_c[..., 1]
    union = area1 + area2 - inter + eps
    hull = hull_c[..., 0] * hull_c[..., 1] + eps
    giou = inter / union - (hull - union) / hull
    g_inter = 1.0 / union + inter / (union * union) - 1.0 / hull
    g_area1 = 1.0 / hull - inter / (union * union)
    g_hull = -union / (hull * hull)
    # gradients with respect to the (width, height) pairs; the other side of each product is the flip
    g_size1 = g_area1[..., None] * (size1 > 0) * size1_c.flip(-1)
    g_inter_size = g_inter[..., None] * (inter_size > 0) * inter_c.flip(-1)
    g_hull_size = g_hull[..., None] * (hull_size > 0) * hull_c.flip(-1)
    g_lo1 = -g_size1 - g_inter_size * _d_min(lo2, lo1) - g_hull_size * _d_min(lo1, lo2)
    g_hi1 = g_size1 + g_inter_size * _d_min(hi1, hi2) + g_hull_size * _d_min(hi2, hi1)
    return giou, torch.cat((g_lo1, g_hi1), -1)


def bckd_box_sum(box_s: Tensor, box_t: Tensor, anchors: Tensor, strides: Tensor, weights: Tensor) -> Tensor:
    """``Σ_{b,a} weights · (1 − GIoU(decode(box_s), decode(box_t)))`` alone, in the weights' dtype."""
    dtype = weights.dtype
    giou = generalized_iou(decode_dfl_boxes(box_s.to(dtype), anchors, strides),
                           decode_dfl_boxes(box_t.to(dtype), anchors, strides))
    return (weights * (1.0 - giou)).sum()


def bckd_box_value_and_grad(box_s: Tensor, box_t: Tensor, anchors: Tensor, strides: Tensor,
                            weights: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_{b,a} weights · (1 − GIoU(decode(box_s), decode(box_t)))`` and its gradient for ``box_s``.

    ``box_s``, ``box_t``: ``(B, A, 4, reg_max)`` DFL logits; ``weights``: ``(B, A)``. The gradient, in the
    weights' dtype, chains :func:`giou_and_grad` through the decode: ``x1 = (a_x − d_left)·stride`` and
    ``∂d/∂logit_k = p_k (k − d)`` for the expected distance ``d = Σ_k p_k k`` (``reg_max == 1``: ``d`` is
    the logit). One pass over both boxes; nothing is kept but the gradient.
    """
    dtype = weights.dtype
    logits = box_s.to(dtype)
    distances, probs = dfl_distances(logits)
    decoded_s = boxes_from_distances(distances, anchors, strides)
    decoded_t = decode_dfl_boxes(box_t.to(dtype), anchors, strides)
    giou, g_box = giou_and_grad(decoded_s, decoded_t)
    total = (weights * (1.0 - giou)).sum()
    side = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=dtype, device=logits.device)
    g_distance = -weights[..., None] * g_box * side * strides.to(dtype)[:, None]  # (B, A, 4)
    if probs is None:
        return total, g_distance[..., None]
    bins = torch.arange(probs.shape[-1], dtype=dtype, device=logits.device)
    return total, probs * (bins - distances[..., None]) * g_distance[..., None]


COMPILED_CLS = (LazyCompiled(bckd_cls_forward), LazyCompiled(bckd_cls_value_and_grad))
EAGER_CLS = (bckd_cls_forward, bckd_cls_value_and_grad)
COMPILED_BOX = LazyCompiled(bckd_box_value_and_grad)


class BCKDBoxFunction(torch.autograd.Function):
    """Box term of BCKD: ``Σ weights · (1 − GIoU)`` of the decoded boxes; differentiable for ``box_s`` only.
    Forward also writes the unscaled gradient (:func:`bckd_box_value_and_grad`), backward scales it;
    without ``requires_grad`` it computes the value only."""

    @staticmethod
    def forward(ctx, box_s: Tensor, box_t: Tensor, anchors: Tensor, strides: Tensor, weights: Tensor,
                kernels: str) -> Tensor:
        ctx.student_dtype = box_s.dtype
        kernels = select_kernels("BCKD", box_s, kernels, has_triton=False)
        with torch.autocast(box_s.device.type, enabled=False):
            if not ctx.needs_input_grad[0]:
                return bckd_box_sum(box_s, box_t, anchors, strides, weights)
            value_and_grad = bckd_box_value_and_grad if kernels == "torch" else COMPILED_BOX
            total, grad = value_and_grad(box_s, box_t, anchors, strides, weights)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (unscaled,) = ctx.saved_tensors
        return (unscaled * grad_output.to(unscaled.dtype)).to(ctx.student_dtype), None, None, None, None, None


class BCKDClassFunction(torch.autograd.Function):
    """Class term of BCKD on ``(R, nc)`` rows: returns (sum, box weights ``(R,)``, ``max_c p_t`` ``(R,)``);
    only the sum is differentiable, for the student only (``|p_t − p_s|^beta`` included).

    ``kernels``: ``"triton"`` (backward recomputes), ``"compiled"`` or ``"torch"`` (forward writes the
    unscaled gradient when the student requires grad, backward scales it), or ``"auto"``
    (:func:`kdloss.ops.select_kernels`)."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, beta: float, kernels: str):
        kernels = select_kernels("BCKD", student, kernels, has_triton=True)
        ctx.beta, ctx.kernels, ctx.student_dtype = beta, kernels, student.dtype
        with torch.autocast(student.device.type, enabled=False):
            if kernels == "triton":
                total, gap_max, pt_max = triton_kernels.bckd_cls_forward(student, teacher, beta)
                ctx.save_for_backward(student, teacher)
            else:
                forward, value_and_grad = COMPILED_CLS if kernels == "compiled" else EAGER_CLS
                if ctx.needs_input_grad[0]:
                    total, gap_max, pt_max, grad = value_and_grad(student, teacher, beta)
                    ctx.save_for_backward(grad)
                else:
                    total, gap_max, pt_max = forward(student, teacher, beta)
        ctx.mark_non_differentiable(gap_max, pt_max)
        return total, gap_max, pt_max

    @staticmethod
    def backward(ctx, grad_total: Tensor, _grad_gap: Tensor, _grad_pt: Tensor):
        if ctx.kernels == "triton":
            student, teacher = ctx.saved_tensors
            with torch.autocast(student.device.type, enabled=False):
                grad = triton_kernels.bckd_cls_backward(student, teacher, ctx.beta, grad_total.float())
        else:
            (unscaled,) = ctx.saved_tensors
            grad = (unscaled * grad_total.to(unscaled.dtype)).to(ctx.student_dtype)
        return grad, None, None, None


def bckd_terms_fused(student_cls: Tensor, teacher_cls: Tensor, student_box: Tensor, teacher_box: Tensor,
                     anchors: Tensor, strides: Tensor, beta: float, kernels: str = "auto"
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """(class-term sum, box-term sum, teacher soft count ``Σ max_c p_t``) on validated inputs."""
    b, a, nc = student_cls.shape
    cls_sum, gap_max, pt_max = BCKDClassFunction.apply(
        student_cls.reshape(b * a, nc), teacher_cls.detach().reshape(b * a, nc), beta, kernels)
    box_sum = BCKDBoxFunction.apply(student_box, teacher_box.detach(), anchors, strides, gap_max.view(b, a), kernels)
    return cls_sum, box_sum, pt_max.sum()
