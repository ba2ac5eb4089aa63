"""Fused CWD: a custom autograd Function that never keeps a softmax.

Rows are the ``N·C`` channel maps, each a distribution over its ``L = H·W`` positions. For row ``r``,
with ``s`` and ``t`` already divided by tau::

    KL_r = Σ_j p_t,j (t_j − s_j) + lse(s) − lse(t),      p_t = exp(t − lse(t))
    ∂(Σ_r KL_r)/∂student_j = (softmax(s)_j − p_t,j) / tau

Two strategies, chosen by the kernels:

- GPU (Triton, :mod:`kdloss.ops.triton_levels`): forward saves two floats per row (``lse(s)``, ``lse(t)``)
  and backward recomputes both softmaxes from the inputs. Memory traffic is what costs there.
- CPU (inductor-compiled torch, or the same torch code run eagerly as the fallback): the exponentials
  are what costs, so forward takes one exponential per element of each input and, while the row is in
  cache, also writes the unscaled gradient ``softmax(s) − softmax(t)``, which backward only scales.
  That gradient is the tensor backward would allocate anyway: this moves its allocation from the start
  of the backward pass to the end of the forward, and holds one more gradient-sized buffer (the saved one
  beside the scaled result) while the loss's own backward runs. Without ``requires_grad`` (evaluation)
  forward computes the statistics only.

The reference they replace is :func:`kdloss.functional.cwd.cwd_level`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import compute_dtype, zero_loss
from kdloss.ops import select_kernels, triton_levels
from kdloss.ops._compile import LazyCompiled


def _scaled_rows(student: Tensor, teacher: Tensor, inv_tau: float) -> tuple[Tensor, Tensor]:
    dtype = compute_dtype(student)
    return student.to(dtype) * inv_tau, teacher.to(dtype) * inv_tau


def cwd_rows_forward(student: Tensor, teacher: Tensor, inv_tau: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(R, L)`` logits → (``Σ_r KL_r``, ``lse_s (R,)``, ``lse_t (R,)``) in float32 (float64 stays).

    Written so that each element's exponential is taken once: ``e_t = exp(t − max t)`` serves both the
    normaliser ``Σ e_t`` and the weighted sum ``Σ e_t (t − s)``, which compile into one loop per row.
    """
    s, t = _scaled_rows(student, teacher, inv_tau)
    max_s, max_t = s.amax(1, keepdim=True), t.amax(1, keepdim=True)
    e_t = torch.exp(t - max_t)
    sum_t = e_t.sum(1)
    lse_s = torch.log(torch.exp(s - max_s).sum(1)) + max_s[:, 0]
    lse_t = torch.log(sum_t) + max_t[:, 0]
    kl = (e_t * (t - s)).sum(1) / sum_t + lse_s - lse_t
    return kl.sum(), lse_s, lse_t


def cwd_rows_value_and_grad(student: Tensor, teacher: Tensor, inv_tau: float) -> tuple[Tensor, Tensor]:
    """``(R, L)`` logits → (``Σ_r KL_r``, ``softmax(s) − softmax(t)`` ``(R, L)``), float32 (float64 stays).

    ``e_s = exp(s − max s)`` and ``e_t = exp(t − max t)`` are each taken once per element and serve the
    normalisers, the KL sum and the gradient; inductor compiles this into one loop nest per row that
    keeps both rows in row-sized local buffers.
    """
    s, t = _scaled_rows(student, teacher, inv_tau)
    max_s, max_t = s.amax(1, keepdim=True), t.amax(1, keepdim=True)
    e_s, e_t = torch.exp(s - max_s), torch.exp(t - max_t)
    sum_s, sum_t = e_s.sum(1), e_t.sum(1)
    kl = (e_t * (t - s)).sum(1) / sum_t + torch.log(sum_s) + max_s[:, 0] - torch.log(sum_t) - max_t[:, 0]
    grad = e_s * (1.0 / sum_s)[:, None] - e_t * (1.0 / sum_t)[:, None]
    return kl.sum(), grad


COMPILED = (LazyCompiled(cwd_rows_forward), LazyCompiled(cwd_rows_value_and_grad))
EAGER = (cwd_rows_forward, cwd_rows_value_and_grad)


class CWDRowsFunction(torch.autograd.Function):
    """``scale · Σ_r KL(softmax(t_r/tau) ‖ softmax(s_r/tau))`` over ``(R, L)`` rows; gradient for the student.

    ``kernels``: ``"triton"`` (statistics saved, softmaxes recomputed in backward), ``"compiled"`` or
    ``"torch"`` (unscaled gradient written by forward), or ``"auto"`` (:func:`kdloss.ops.select_kernels`).
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, tau: float, kernels: str, scale: float = 1.0) -> Tensor:
        kernels = select_kernels("CWD", student, kernels, has_triton=True)
        ctx.tau, ctx.scale, ctx.kernels, ctx.student_dtype = tau, scale, kernels, student.dtype
        with torch.autocast(student.device.type, enabled=False):
            if kernels == "triton":
                total, lse_s, lse_t = triton_levels.cwd_levels_forward([student.contiguous()],
                                                                       [teacher.contiguous()], [1.0], 1.0 / tau)
                ctx.save_for_backward(student, teacher, lse_s, lse_t)
            else:
                forward, value_and_grad = COMPILED if kernels == "compiled" else EAGER
                if ctx.needs_input_grad[0]:
                    total, grad = value_and_grad(student, teacher, 1.0 / tau)
                    ctx.save_for_backward(grad)
                else:
                    total = forward(student, teacher, 1.0 / tau)[0]
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        factor = grad_output * (ctx.scale / ctx.tau)
        if ctx.kernels == "triton":
            student, teacher, lse_s, lse_t = ctx.saved_tensors
            grad = triton_levels.cwd_levels_backward([student.contiguous()], [teacher.contiguous()], lse_s, lse_t,
                                                     [1.0], 1.0 / ctx.tau, factor)[0]
        else:
            (unscaled,) = ctx.saved_tensors
            grad = (unscaled * factor.to(unscaled.dtype)).to(ctx.student_dtype)
        return grad, None, None, None, None


class CWDLevelsFunction(torch.autograd.Function):
    """``Σ_l scale_l · Σ_r KL(softmax(t_r/tau) ‖ softmax(s_r/tau))`` over the ``(R_l, L_l)`` rows of 1 to
    :data:`kdloss.ops.triton_levels.MAX_LEVELS` levels, in one Triton launch forward (two floats saved per
    row) and one backward; gradients for the students only. Triton only: the other kernels run
    :class:`CWDRowsFunction` level by level."""

    @staticmethod
    def forward(ctx, tau: float, scales: tuple[float, ...], *pairs: Tensor) -> Tensor:
        levels = len(pairs) // 2
        students = [s.contiguous() for s in pairs[:levels]]
        teachers = [t.contiguous() for t in pairs[levels:]]
        total, lse_s, lse_t = triton_levels.cwd_levels_forward(students, teachers, scales, 1.0 / tau)
        ctx.save_for_backward(*pairs, lse_s, lse_t)  # the inputs, not their contiguous copies
        ctx.tau, ctx.scales, ctx.levels = tau, scales, levels
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        *pairs, lse_s, lse_t = ctx.saved_tensors
        students = [s.contiguous() for s in pairs[:ctx.levels]]
        teachers = [t.contiguous() for t in pairs[ctx.levels:]]
        grads = triton_levels.cwd_levels_backward(students, teachers, lse_s, lse_t, ctx.scales, 1.0 / ctx.tau,
                                                  grad_output / ctx.tau)
        grads = [grad if ctx.needs_input_grad[2 + level] else None for level, grad in enumerate(grads)]
        return None, None, *grads, *([None] * ctx.levels)


def cwd_fused(s_levels: list[Tensor], t_levels: list[Tensor], tau: float, kernels: str = "auto") -> Tensor:
    """:func:`kdloss.functional.cwd.cwd` over validated ``(N, C, H, W)`` levels: with Triton kernels (CUDA),
    every non-empty level in one :class:`CWDLevelsFunction`; else :func:`cwd_level_fused` level by level."""
    present = [(s, t) for s, t in zip(s_levels, t_levels) if s.numel()]
    empty = zero_loss(*[s for s in s_levels if not s.numel()]) if len(present) < len(s_levels) else 0.0
    use_triton = (select_kernels("CWD", s_levels[0], kernels, has_triton=True) == "triton"
                  and triton_levels.one_launch_fits([*s_levels, *t_levels]))
    if not present or not use_triton or len(present) > triton_levels.MAX_LEVELS:
        return sum(cwd_level_fused(s, t, tau, kernels) for s, t in present) + empty
    rows = [s.reshape(s.shape[0] * s.shape[1], -1) for s, _ in present]
    teacher_rows = [t.detach().reshape(t.shape[0] * t.shape[1], -1) for _, t in present]
    scales = tuple(tau**2 / r.shape[0] for r in rows)
    return CWDLevelsFunction.apply(tau, scales, *rows, *teacher_rows) + empty


def cwd_level_fused(student: Tensor, teacher: Tensor, tau: float, kernels: str = "auto") -> Tensor:
    """Same value and gradient as :func:`kdloss.functional.cwd.cwd_level`, on validated ``(N, C, H, W)``."""
    n, c = student.shape[:2]
    rows = student.reshape(n * c, -1)
    return CWDRowsFunction.apply(rows, teacher.detach().reshape(n * c, -1), tau, kernels, tau**2 / (n * c))
