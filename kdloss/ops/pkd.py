"""Fused PKD: every level's channel statistics, loss and gradient in one autograd Function.

With Triton kernels (CUDA) all levels are one launch forward and one backward (:mod:`kdloss.ops.triton_pkd`),
four floats saved per channel and the inputs themselves, not copies. Where they do not fit (another kernel
choice, float64, levels on several devices) :func:`kdloss.functional.pkd.pkd` runs the compiled reference level
by level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdloss.ops import select_kernels, triton_levels, triton_pkd


class PKDLevelsFunction(torch.autograd.Function):
    """``Σ_l 1/(2·N·C·H·W) · Σ (ŝ_l − t̂_l)²`` over 1 to :data:`kdloss.ops.triton_pkd.MAX_LEVELS` levels
    ``(N, C, H, W)`` (each channel standardised over ``N·H·W``); gradients for the students only. Triton only."""

    @staticmethod
    def forward(ctx, *pairs: Tensor) -> Tensor:
        levels = len(pairs) // 2
        students = [s.contiguous() for s in pairs[:levels]]
        teachers = [t.contiguous() for t in pairs[levels:]]
        total, stats = triton_pkd.pkd_levels_forward(students, teachers)
        ctx.save_for_backward(*pairs, stats)
        ctx.levels = levels
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        *pairs, stats = ctx.saved_tensors
        students = [s.contiguous() for s in pairs[:ctx.levels]]
        teachers = [t.contiguous() for t in pairs[ctx.levels:]]
        grads = triton_pkd.pkd_levels_backward(students, teachers, stats, grad_output)
        grads = [grad if ctx.needs_input_grad[level] else None for level, grad in enumerate(grads)]
        return *grads, *([None] * ctx.levels)


def pkd_levels_fit(s_levels: Sequence[Tensor], t_levels: Sequence[Tensor], kernels: str = "auto") -> bool:
    """Whether :func:`pkd_levels_fused` takes these levels: Triton kernels chosen, one device, no float64."""
    return (select_kernels("PKD", s_levels[0], kernels, has_triton=True) == "triton"
            and triton_levels.one_launch_fits([*s_levels, *t_levels]))


def pkd_levels_fused(s_levels: Sequence[Tensor], t_levels: Sequence[Tensor]) -> Tensor:
    """PKD's sum over validated, non-empty ``(N, C, H, W)`` levels, one :class:`PKDLevelsFunction` per
    :data:`kdloss.ops.triton_pkd.MAX_LEVELS` levels (only where :func:`pkd_levels_fit`)."""
    groups = [range(first, min(first + triton_pkd.MAX_LEVELS, len(s_levels)))
              for first in range(0, len(s_levels), triton_pkd.MAX_LEVELS)]
    return sum(PKDLevelsFunction.apply(*[s_levels[i] for i in group], *[t_levels[i].detach() for i in group])
               for group in groups)
