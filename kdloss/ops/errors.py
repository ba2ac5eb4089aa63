"""Fused sums of squared and absolute errors (Mimic, L2, L1, MGD's reconstruction term).

``Σ_l scale_l · Σ (s_l − t_l)²`` or ``Σ_l scale_l · Σ |s_l − t_l|`` over one or more levels in one pass with
float32 accumulation, saving only references to the inputs; backward writes ``2 (s − t) · g`` or
``sign(s − t) · g`` in one more pass, the gradient being the only full-size tensor made. On CUDA both passes are
one Triton launch for all levels (:mod:`kdloss.ops.triton_levels`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdloss._checks import compute_dtype
from kdloss.ops import select_kernels, triton_levels
from kdloss.ops._compile import LazyCompiled


def squared_error_sum(student: Tensor, teacher: Tensor) -> Tensor:
    diff = student.to(compute_dtype(student)) - teacher.to(compute_dtype(student))
    return (diff * diff).sum()


def squared_error_grad(student: Tensor, teacher: Tensor, factor: Tensor) -> Tensor:
    return ((student.to(factor.dtype) - teacher.to(factor.dtype)) * (2 * factor)).to(student.dtype)


def absolute_error_sum(student: Tensor, teacher: Tensor) -> Tensor:
    return (student.to(compute_dtype(student)) - teacher.to(compute_dtype(student))).abs().sum()


def absolute_error_grad(student: Tensor, teacher: Tensor, factor: Tensor) -> Tensor:
    return (torch.sign(student.to(factor.dtype) - teacher.to(factor.dtype)) * factor).to(student.dtype)


KERNELS = {
    ("torch", 2): (squared_error_sum, squared_error_grad),
    ("torch", 1): (absolute_error_sum, absolute_error_grad),
    ("compiled", 2): (LazyCompiled(squared_error_sum), LazyCompiled(squared_error_grad)),
    ("compiled", 1): (LazyCompiled(absolute_error_sum), LazyCompiled(absolute_error_grad)),
}


class ErrorLevelsFunction(torch.autograd.Function):
    """``Σ_l scale_l · Σ |s_l − t_l|^power`` over levels (power 1 or 2); gradients for the students only.

    ``kernels="triton"``: one launch forward and one backward per :data:`kdloss.ops.triton_levels.MAX_LEVELS`
    levels (:mod:`kdloss.ops.triton_levels`), for levels on one device with no float64 among them (else the
    compiled kernels). Other kernels: the one-level sums and gradients above, level by level. Either way only
    the inputs are saved.
    """

    @staticmethod
    def forward(ctx, power: int, scales: tuple[float, ...], kernels: str, *pairs: Tensor) -> Tensor:
        levels = len(pairs) // 2
        students, teachers = pairs[:levels], pairs[levels:]
        kernels = select_kernels("error sum", students[0], kernels, has_triton=True)
        if kernels == "triton" and not triton_levels.one_launch_fits(pairs):
            kernels = "compiled"
        ctx.kernels, ctx.power, ctx.scales, ctx.levels = kernels, power, scales, levels
        with torch.autocast(students[0].device.type, enabled=False):
            if kernels == "triton":
                total = sum(triton_levels.error_levels_forward(
                    [students[i].contiguous() for i in group], [teachers[i].contiguous() for i in group],
                    [scales[i] for i in group], power) for group in triton_levels.level_groups(levels))
            else:
                forward = KERNELS[(kernels, power)][0]
                total = sum(forward(s, t) * scale for s, t, scale in zip(students, teachers, scales))
        ctx.save_for_backward(*students, *teachers)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        saved = ctx.saved_tensors
        students, teachers = saved[:ctx.levels], saved[ctx.levels:]
        with torch.autocast(grad_output.device.type, enabled=False):
            if ctx.kernels == "triton":
                grads = []
                for group in triton_levels.level_groups(ctx.levels):
                    grads += triton_levels.error_levels_backward(
                        [students[i].contiguous() for i in group], [teachers[i].contiguous() for i in group],
                        [ctx.scales[i] for i in group], ctx.power, grad_output)
            else:
                backward = KERNELS[(ctx.kernels, ctx.power)][1]
                grads = [backward(s, t, grad_output.to(compute_dtype(s)) * scale)
                         for s, t, scale in zip(students, teachers, ctx.scales)]
        grads = [grad if ctx.needs_input_grad[3 + level] else None for level, grad in enumerate(grads)]
        return None, None, None, *grads, *([None] * ctx.levels)


def error_levels_fused(students: Sequence[Tensor], teachers: Sequence[Tensor], scales: Sequence[float], power: int,
                       kernels: str = "auto") -> Tensor:
    """``Σ_l scale_l · Σ |s_l − t_l|^power`` over level pairs; the teachers are constants.

    Each ``s_l`` and ``t_l`` have one shape, any shape (a mismatch is a ``ValueError``: the kernels index both
    alike); the result is a float32 scalar (float64 for float64 inputs). On CUDA with Triton, one launch for
    every four levels.
    """
    if not len(students) == len(teachers) == len(scales) >= 1:
        raise ValueError(f"error sums: {len(students)} students, {len(teachers)} teachers and {len(scales)} scales; "
                         "give one of each per level")
    for level, (s, t) in enumerate(zip(students, teachers)):
        if s.shape != t.shape:
            raise ValueError(f"error sums: level {level}: student {tuple(s.shape)} and teacher {tuple(t.shape)} "
                             "differ")
    return ErrorLevelsFunction.apply(power, tuple(float(x) for x in scales), kernels, *students,
                                     *(t.detach() for t in teachers))


def error_sum_fused(student: Tensor, teacher: Tensor, power: int, kernels: str = "auto") -> Tensor:
    """``Σ |s − t|^power`` of one pair: :func:`error_levels_fused` with one level of scale 1."""
    return error_levels_fused([student], [teacher], [1.0], power, kernels)
