"""Feature mimicking (Li et al., CVPR 2017, "Mimicking Very Efficient Network for Object Detection")."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdloss._checks import FeatureLevels, compute_dtype, feature_levels, zero_loss
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.errors import error_levels_fused


def mimic(student: FeatureLevels, teacher: FeatureLevels, *, impl: str = "auto", check_finite: bool = False) -> Tensor:
    """Mean squared error between student and teacher feature maps, summed over levels.

    Per level: ``loss = 1 / (N·C·H·W) · Σ (s − t)²``.

    Args:
        student: ``(N, C, H, W)`` float tensor, or a sequence of them (one per level).
        teacher: same shapes as ``student``; treated as a constant.
        impl: ``"eager"``, ``"fused"`` (all levels in one error sum, :mod:`kdloss.ops.errors`), ``"compile"`` or
            ``"auto"``.
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    """
    impl = resolve_impl("Mimic", impl, student)
    s_levels, t_levels = feature_levels("Mimic", student, teacher, check_finite=check_finite)
    if impl == "fused":
        return mimic_fused(s_levels, t_levels)
    level = LEVEL_IMPLS[impl]
    return sum(level(s, t) if s.numel() else zero_loss(s) for s, t in zip(s_levels, t_levels))


def mimic_level(student: Tensor, teacher: Tensor) -> Tensor:
    """One level of :func:`mimic` on validated, non-empty tensors."""
    dtype = compute_dtype(student)
    return F.mse_loss(student.to(dtype), teacher.detach().to(dtype))


def mimic_fused(s_levels: list[Tensor], t_levels: list[Tensor]) -> Tensor:
    """:func:`mimic` over validated levels in one fused error sum (one Triton launch for all levels on CUDA);
    an empty level adds nothing."""
    return error_levels_fused(s_levels, t_levels, [1.0 / max(s.numel(), 1) for s in s_levels], power=2)


LEVEL_IMPLS = {"eager": mimic_level, "compile": LazyCompiled(mimic_level)}
