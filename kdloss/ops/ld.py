"""Fused LD: the teacher-weighted KL of the box distributions as one autograd Function.

With Triton kernels (CUDA) the whole loss is one launch forward and one backward
(:mod:`kdloss.ops.triton_ld`): the weights ``σ(max_c teacher_cls)`` are made in the forward launch and saved
(one float per anchor), the softmaxes recomputed in backward. Where it does not fit (:func:`box_kl_fits`),
:func:`kdloss.functional.ld.ld` runs the compiled reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss.ops import select_kernels, triton_ld, triton_levels


class BoxKLFunction(torch.autograd.Function):
    """``(bin_scale · Σ_a w_a Σ_k KL(softmax(t_ak/T) ‖ softmax(s_ak/T)), Σ_a w_a)`` with ``w_a = σ(max_c
    teacher_cls_ac)``, on ``(anchors, 4, bins)`` box logits and ``(anchors, classes)`` teacher class logits;
    the gradient reaches the student's box logits only (the second output has none). Triton kernels only."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, teacher_cls: Tensor, temperature: float,
                bin_scale: float) -> tuple[Tensor, Tensor]:
        contiguous = (student.contiguous(), teacher.contiguous(), teacher_cls.contiguous())
        total, count, weights = triton_ld.box_kl_forward(*contiguous, 1.0 / temperature, bin_scale)
        ctx.save_for_backward(student, teacher, teacher_cls, weights)  # the inputs, not contiguous copies
        ctx.temperature, ctx.bin_scale = temperature, bin_scale
        ctx.mark_non_differentiable(count)
        return total, count

    @staticmethod
    def backward(ctx, grad_total: Tensor, grad_count: Tensor | None):
        student, teacher, teacher_cls, weights = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = triton_ld.box_kl_backward(student.contiguous(), teacher.contiguous(), teacher_cls.contiguous(),
                                             weights, 1.0 / ctx.temperature, ctx.bin_scale, grad_total)
        return grad, None, None, None, None


def box_kl_fits(student_box: Tensor, teacher_box: Tensor, teacher_cls: Tensor, kernels: str) -> bool:
    """Whether :class:`BoxKLFunction` runs these: Triton kernels chosen, one device, no float64, classes ≥ 1."""
    return (select_kernels("LD", student_box, kernels, has_triton=True) == "triton"
            and triton_levels.one_launch_fits([student_box, teacher_box, teacher_cls]) and teacher_cls.shape[-1] > 0)


def ld_box_kl(student_box: Tensor, teacher_box: Tensor, teacher_cls: Tensor, temperature: float
              ) -> tuple[Tensor, Tensor]:
    """LD's sums on ``(B, A, 4, reg_max)`` boxes and ``(B, A, nc)`` teacher classes, as
    :func:`kdloss.functional.ld.ld_terms` (``Σ_{b,a} w_ba · ¼ Σ_k kl_bak``, ``Σ_{b,a} w_ba``), in one
    :class:`BoxKLFunction`; only where :func:`box_kl_fits`."""
    bins = student_box.shape[-1]
    anchors = student_box.shape[0] * student_box.shape[1]
    return BoxKLFunction.apply(student_box.reshape(anchors, 4, bins), teacher_box.detach().reshape(anchors, 4, bins),
                               teacher_cls.detach().reshape(anchors, -1), temperature, temperature**2 / bins / 4)
