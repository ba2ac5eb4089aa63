"""Fused sums of squared and absolute errors (Mimic, L2, L1, MGD's reconstruction term).

``Σ (s − t)²`` and ``Σ |s − t|`` in one pass with float32 accumulation, saving only references to the
inputs; backward writes ``2 (s − t) · g`` or ``sign(s − t) · g`` in one more pass, the gradient being the
only full-size tensor made.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss._checks import compute_dtype
from kdloss.ops import select_kernels
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


class ErrorSumFunction(torch.autograd.Function):
    """``Σ |s − t|^power`` for power 1 or 2; gradient for the student only."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, power: int, kernels: str) -> Tensor:
        kernels = select_kernels("error sum", student, kernels, has_triton=False)
        forward, backward = KERNELS[(kernels, power)]
        with torch.autocast(student.device.type, enabled=False):
            total = forward(student, teacher)
        ctx.save_for_backward(student, teacher)
        ctx.backward_kernel = backward
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        student, teacher = ctx.saved_tensors
        with torch.autocast(student.device.type, enabled=False):
            grad = ctx.backward_kernel(student, teacher, grad_output.to(compute_dtype(student)))
        return grad, None, None, None


def error_sum_fused(student: Tensor, teacher: Tensor, power: int, kernels: str = "auto") -> Tensor:
    return ErrorSumFunction.apply(student, teacher.detach(), power, kernels)
