"""Fused BCKD: the class term as one custom autograd Function, the box term as one compiled function.

Class term over ``(R, nc)`` rows (``R = B·A`` anchors), with ``p_t = σ(t)``, ``p_s = σ(s)``::

    Σ BCE_with_logits(s, p_t) · |p_t − p_s|^beta,      ∂/∂s = (p_s − p_t) · |p_t − p_s|^beta

(the weight carries no gradient, as in the official code). One pass also gives the per-anchor
``max_c |p_t − p_s|`` (the box weights) and ``max_c p_t`` (the default normaliser), so nothing of size
``(R, nc)`` is kept for backward but the inputs. Box term: DFL decode of both boxes, GIoU and the
weighted sum in one compiled function (autograd through inductor's fused backward).
Reference: :func:`kdloss.functional.bckd.bckd_parts`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import compute_dtype
from kdloss.detection import decode_dfl_boxes, generalized_iou
from kdloss.ops import triton_kernels
from kdloss.ops._compile import LazyCompiled


def _sigmoid_and_softplus_neg_abs(x: Tensor) -> tuple[Tensor, Tensor]:
    """``σ(x)`` and ``log(1 + exp(−|x|))`` from one exponential ``e = exp(−|x|)``.

    ``log1p(e)`` is computed as ``log(u) · e / (u − 1)`` with ``u = 1 + e`` (Goldberg's correction, exact to
    a few ulp; ``e`` itself where ``u`` rounds to 1), because vectorised ``log1p`` is about 12x slower than
    ``log`` in torch's CPU builds (see benchmarks/README.md) and would dominate the class term.
    """
    e = torch.exp(-x.abs())
    u = 1.0 + e
    softplus = torch.where(u == 1.0, e, torch.log(u) * (e / (u - 1.0)))
    return torch.where(x >= 0, 1.0, e) / u, softplus


def _weight(gap: Tensor, beta: float) -> Tensor:
    return gap if beta == 1.0 else gap.pow(beta)  # the common beta = 1 needs no pow


def bckd_cls_forward(student: Tensor, teacher: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(R, nc)`` logits → (class-term sum, ``max_c |p_t − p_s|`` ``(R,)``, ``max_c p_t`` ``(R,)``).

    ``BCE_with_logits(x, p) = max(x, 0) − x·p + log(1 + exp(−|x|))``, sharing its exponential with ``σ(x)``.
    """
    dtype = compute_dtype(student)
    x = student.to(dtype)
    p_t = torch.sigmoid(teacher.to(dtype))
    p_s, softplus = _sigmoid_and_softplus_neg_abs(x)
    gap = (p_t - p_s).abs()
    bce = x.clamp(min=0) - x * p_t + softplus
    return (bce * _weight(gap, beta)).sum(), gap.amax(1), p_t.amax(1)


def bckd_cls_backward(student: Tensor, teacher: Tensor, beta: float, factor: Tensor) -> Tensor:
    """``factor · (p_s − p_t) · |p_t − p_s|^beta`` in the student's dtype."""
    p_s = torch.sigmoid(student.to(factor.dtype))
    diff = p_s - torch.sigmoid(teacher.to(factor.dtype))
    return (diff * _weight(diff.abs(), beta) * factor).to(student.dtype)


def bckd_box_sum(box_s: Tensor, box_t: Tensor, anchors: Tensor, strides: Tensor, weights: Tensor) -> Tensor:
    """``Σ_{b,a} weights · (1 − GIoU(decode(box_s), decode(box_t)))``; gradient for ``box_s`` only."""
    dtype = weights.dtype
    decoded_s = decode_dfl_boxes(box_s.to(dtype), anchors, strides)
    decoded_t = decode_dfl_boxes(box_t.detach().to(dtype), anchors, strides)
    return (weights * (1.0 - generalized_iou(decoded_s, decoded_t))).sum()


COMPILED_CLS = (LazyCompiled(bckd_cls_forward), LazyCompiled(bckd_cls_backward))
COMPILED_BOX = LazyCompiled(bckd_box_sum)


def cls_kernels_for(tensor: Tensor, kernels: str = "auto"):
    if kernels == "auto":
        kernels = "triton" if tensor.is_cuda and triton_kernels.AVAILABLE else "compiled"
    if kernels == "triton":
        return triton_kernels.bckd_cls_forward, triton_kernels.bckd_cls_backward
    return COMPILED_CLS if kernels == "compiled" else (bckd_cls_forward, bckd_cls_backward)


class BCKDClassFunction(torch.autograd.Function):
    """Class term of BCKD on ``(R, nc)`` rows: returns (sum, box weights ``(R,)``, ``max_c p_t`` ``(R,)``);
    only the sum is differentiable, for the student only."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, beta: float, kernels: str):
        forward, backward = cls_kernels_for(student, kernels)
        with torch.autocast(student.device.type, enabled=False):
            total, gap_max, pt_max = forward(student, teacher, beta)
        ctx.save_for_backward(student, teacher)
        ctx.beta, ctx.backward_kernel = beta, backward
        ctx.mark_non_differentiable(gap_max, pt_max)
        return total, gap_max, pt_max

    @staticmethod
    def backward(ctx, grad_total: Tensor, _grad_gap: Tensor, _grad_pt: Tensor):
        student, teacher = ctx.saved_tensors
        dtype = compute_dtype(student)
        with torch.autocast(student.device.type, enabled=False):
            grad = ctx.backward_kernel(student, teacher, ctx.beta, grad_total.to(dtype))
        return grad, None, None, None


def bckd_terms_fused(student_cls: Tensor, teacher_cls: Tensor, student_box: Tensor, teacher_box: Tensor,
                     anchors: Tensor, strides: Tensor, beta: float, kernels: str = "auto"
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """(class-term sum, box-term sum, teacher soft count ``Σ max_c p_t``) on validated inputs."""
    b, a, nc = student_cls.shape
    cls_sum, gap_max, pt_max = BCKDClassFunction.apply(
        student_cls.reshape(b * a, nc), teacher_cls.detach().reshape(b * a, nc), beta, kernels)
    box_fn = bckd_box_sum if kernels == "torch" else COMPILED_BOX
    box_sum = box_fn(student_box, teacher_box.detach(), anchors, strides, gap_max.view(b, a))
    return cls_sum, box_sum, pt_max.sum()
