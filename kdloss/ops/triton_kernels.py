"""Triton kernels for BCKD's class term (CWD's and the error sums' are in :mod:`kdloss.ops.triton_levels`,
every level in one launch):

- BCKD class term: one program per anchor; sigmoid, BCE-with-logits and the ``|p_t − p_s|^beta`` weight
  in one read; also the per-anchor ``max_c |p_t − p_s|`` (box weights) and ``max_c p_t`` (default
  normaliser). Backward recomputes and writes the full gradient, the weight ``|p_t − p_s|^beta``
  differentiated as in the official code (see :mod:`kdloss.ops.bckd`).

The launchers have torch twins with the same signature (:mod:`kdloss.ops.bckd`); each is tested through its
autograd Function against the plain formula, on the CPU too with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl

    AVAILABLE = True
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    AVAILABLE = False

if AVAILABLE:

    @triton.jit
    def _bckd_cls_forward_kernel(S, T, LOSS, GAP_MAX, PT_MAX, classes, beta, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        idx = tl.arange(0, BLOCK)
        mask = idx < classes
        x = tl.load(S + row * classes + idx, mask=mask, other=0.0).to(tl.float32)
        p_t = tl.sigmoid(tl.load(T + row * classes + idx, mask=mask, other=0.0).to(tl.float32))
        gap = tl.abs(p_t - tl.sigmoid(x))
        weight = tl.where(gap > 0, tl.exp(beta * tl.log(tl.maximum(gap, 1e-30))), 0.0)
        bce = tl.maximum(x, 0.0) - x * p_t + tl.log(1.0 + tl.exp(-tl.abs(x)))
        tl.store(LOSS + row, tl.sum(tl.where(mask, bce * weight, 0.0), 0))
        tl.store(GAP_MAX + row, tl.max(tl.where(mask, gap, 0.0), 0))
        tl.store(PT_MAX + row, tl.max(tl.where(mask, p_t, 0.0), 0))

    @triton.jit
    def _bckd_cls_backward_kernel(S, T, GRAD, FACTOR, classes, beta, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        idx = tl.arange(0, BLOCK)
        mask = idx < classes
        x = tl.load(S + row * classes + idx, mask=mask, other=0.0).to(tl.float32)
        p_t = tl.sigmoid(tl.load(T + row * classes + idx, mask=mask, other=0.0).to(tl.float32))
        e = tl.exp(-tl.abs(x))
        u = 1.0 + e
        p_s = tl.where(x >= 0, 1.0, e) / u
        diff = p_s - p_t
        gap = tl.abs(diff)
        weight = tl.where(gap > 0, tl.exp(beta * tl.log(tl.maximum(gap, 1e-30))), 0.0)
        bce = tl.maximum(x, 0.0) - x * p_t + tl.log(u)
        d_weight = tl.where(gap > 0, beta * weight / tl.where(gap > 0, diff, 1.0), 0.0)  # beta·|d|^(beta−1)·sign d
        grad = (diff * weight + bce * d_weight * e / (u * u)) * tl.load(FACTOR)
        tl.store(GRAD + row * classes + idx, grad.to(GRAD.dtype.element_ty), mask=mask)


def bckd_cls_forward(student: Tensor, teacher: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Triton build of :func:`kdloss.ops.bckd.bckd_cls_forward` on ``(R, nc)`` logits."""
    student, teacher = student.contiguous(), teacher.contiguous()
    rows, classes = student.shape
    loss, gap_max, pt_max = (torch.empty(rows, dtype=torch.float32, device=student.device) for _ in range(3))
    _bckd_cls_forward_kernel[(rows,)](student, teacher, loss, gap_max, pt_max, classes, beta,
                                      BLOCK=triton.next_power_of_2(max(classes, 16)))
    return loss.sum(), gap_max, pt_max


def bckd_cls_backward(student: Tensor, teacher: Tensor, beta: float, factor: Tensor) -> Tensor:
    """Triton build of :func:`kdloss.ops.bckd.bckd_cls_backward`."""
    student, teacher = student.contiguous(), teacher.contiguous()
    rows, classes = student.shape
    grad = torch.empty_like(student)
    _bckd_cls_backward_kernel[(rows,)](student, teacher, grad, factor.reshape(1).float(), classes, beta,
                                       BLOCK=triton.next_power_of_2(max(classes, 16)))
    return grad
