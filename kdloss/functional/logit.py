"""Plain logit matching: L1 and L2 over all raw head outputs."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdloss._checks import compute_dtype, zero_loss
from kdloss.detection import DetectionOutput, check_detection_pair
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.errors import error_levels_fused


def l1(student: DetectionOutput, teacher: DetectionOutput, *, impl: str = "auto", check_finite: bool = False) -> Tensor:
    """Mean absolute difference of all raw outputs (class and DFL box logits together).

    ``loss = (Σ|s.cls − t.cls| + Σ|s.box − t.box|) / (B·A·(nc + 4·reg_max))``; the teacher is a constant.
    ``student``/``teacher``: :class:`kdloss.DetectionOutput` with ``cls (B, A, nc)`` and ``box (B, A, 4, reg_max)``
    (anchors unused). Returns a scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    ``impl``: ``"eager"``, ``"fused"`` (both error sums in one Function, :mod:`kdloss.ops.errors`), ``"compile"``,
    ``"auto"``.
    """
    check_detection_pair("L1", student, teacher, check_finite=check_finite)
    return _mean_over_outputs(student, teacher, 1, resolve_impl("L1", impl, student))


def l2(student: DetectionOutput, teacher: DetectionOutput, *, impl: str = "auto", check_finite: bool = False) -> Tensor:
    """Mean squared difference of all raw outputs (class and DFL box logits together).

    ``loss = (Σ(s.cls − t.cls)² + Σ(s.box − t.box)²) / (B·A·(nc + 4·reg_max))``; the teacher is a constant.
    Inputs, result and ``impl`` as for :func:`l1`.
    """
    check_detection_pair("L2", student, teacher, check_finite=check_finite)
    return _mean_over_outputs(student, teacher, 2, resolve_impl("L2", impl, student))


def _mean_over_outputs(student: DetectionOutput, teacher: DetectionOutput, power: int, impl: str) -> Tensor:
    count = student.cls.numel() + student.box.numel()
    if count == 0:
        return zero_loss(student.cls, student.box)
    if impl == "fused":  # class and box logits in one error sum: one Triton launch on CUDA
        return error_levels_fused([student.cls, student.box], [teacher.cls, teacher.box], [1.0 / count] * 2, power)
    error_sum = ERROR_SUM_IMPLS[impl]
    return (error_sum(student.cls, teacher.cls, power) + error_sum(student.box, teacher.box, power)) / count


def error_sum(student: Tensor, teacher: Tensor, power: int) -> Tensor:
    """``Σ |s − t|^power`` (power 1 or 2), computed in float32 (float64 stays); the teacher is a constant."""
    dtype = compute_dtype(student)
    s, t = student.to(dtype), teacher.detach().to(dtype)
    return F.l1_loss(s, t, reduction="sum") if power == 1 else F.mse_loss(s, t, reduction="sum")


ERROR_SUM_IMPLS = {"eager": error_sum, "compile": LazyCompiled(error_sum)}
