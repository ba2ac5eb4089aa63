"""Fused CWD: a custom autograd Function that keeps per-row log-sum-exp statistics, not the softmaxes.

Rows are the ``N·C`` channel maps, each a distribution over its ``L = H·W`` positions. For row ``r``,
with ``s`` and ``t`` already divided by tau::

    KL_r = Σ_j p_t,j (t_j − s_j) + lse(s) − lse(t),      p_t = exp(t − lse(t))
    ∂(Σ_r KL_r)/∂student_j = (softmax(s)_j − p_t,j) / tau

Forward saves the inputs (references, no copies) and two floats per row; backward recomputes both
softmaxes from them. The reference it replaces is :func:`kdloss.functional.cwd.cwd_level`.

The per-row kernels come in three builds with the same maths: Triton (CUDA), the torch bodies below
compiled by inductor into one loop nest per row (CPU), and the same bodies run eagerly (fallback).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import compute_dtype
from kdloss.ops import triton_kernels
from kdloss.ops._compile import LazyCompiled


def cwd_rows_forward(student: Tensor, teacher: Tensor, inv_tau: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(R, L)`` logits → (``Σ_r KL_r``, ``lse_s (R,)``, ``lse_t (R,)``) in float32 (float64 stays).

    Written so that each element's exponential is taken once: ``e_t = exp(t − max t)`` serves both the
    normaliser ``Σ e_t`` and the weighted sum ``Σ e_t (t − s)``, which compile into one loop per row.
    """
    dtype = compute_dtype(student)
    s = student.to(dtype) * inv_tau
    t = teacher.to(dtype) * inv_tau
    max_s, max_t = s.amax(1, keepdim=True), t.amax(1, keepdim=True)
    e_t = torch.exp(t - max_t)
    sum_t = e_t.sum(1)
    lse_s = torch.log(torch.exp(s - max_s).sum(1)) + max_s[:, 0]
    lse_t = torch.log(sum_t) + max_t[:, 0]
    kl = (e_t * (t - s)).sum(1) / sum_t + lse_s - lse_t
    return kl.sum(), lse_s, lse_t


def cwd_rows_backward(student: Tensor, teacher: Tensor, lse_s: Tensor, lse_t: Tensor, inv_tau: float,
                      factor: Tensor) -> Tensor:
    """``factor · (softmax(s/tau) − softmax(t/tau))`` in the student's dtype (``factor = grad / tau``)."""
    p_s = torch.exp(student.to(lse_s.dtype) * inv_tau - lse_s[:, None])
    p_t = torch.exp(teacher.to(lse_s.dtype) * inv_tau - lse_t[:, None])
    return ((p_s - p_t) * factor).to(student.dtype)


COMPILED = (LazyCompiled(cwd_rows_forward), LazyCompiled(cwd_rows_backward))
EAGER = (cwd_rows_forward, cwd_rows_backward)


def kernels_for(tensor: Tensor, kernels: str = "auto"):
    """(forward, backward) kernels: ``"triton"``, ``"compiled"``, ``"torch"`` or ``"auto"`` (Triton on CUDA when
    installed, else inductor-compiled torch)."""
    if kernels == "auto":
        kernels = "triton" if tensor.is_cuda and triton_kernels.AVAILABLE else "compiled"
    if kernels == "triton":
        return triton_kernels.cwd_rows_forward, triton_kernels.cwd_rows_backward
    return COMPILED if kernels == "compiled" else EAGER


class CWDRowsFunction(torch.autograd.Function):
    """``scale · Σ_r KL(softmax(t_r/tau) ‖ softmax(s_r/tau))`` over ``(R, L)`` rows; gradient for the student."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, tau: float, kernels: str, scale: float = 1.0) -> Tensor:
        forward, backward = kernels_for(student, kernels)
        with torch.autocast(student.device.type, enabled=False):
            total, lse_s, lse_t = forward(student, teacher, 1.0 / tau)
        ctx.save_for_backward(student, teacher, lse_s, lse_t)
        ctx.tau, ctx.scale, ctx.backward_kernel = tau, scale, backward
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        student, teacher, lse_s, lse_t = ctx.saved_tensors
        factor = (grad_output * (ctx.scale / ctx.tau)).to(lse_s.dtype)
        with torch.autocast(student.device.type, enabled=False):
            grad = ctx.backward_kernel(student, teacher, lse_s, lse_t, 1.0 / ctx.tau, factor)
        return grad, None, None, None, None


def cwd_level_fused(student: Tensor, teacher: Tensor, tau: float, kernels: str = "auto") -> Tensor:
    """Same value and gradient as :func:`kdloss.functional.cwd.cwd_level`, on validated ``(N, C, H, W)``."""
    n, c = student.shape[:2]
    rows = student.reshape(n * c, -1)
    return CWDRowsFunction.apply(rows, teacher.detach().reshape(n * c, -1), tau, kernels, tau**2 / (n * c))
