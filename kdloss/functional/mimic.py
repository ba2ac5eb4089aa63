"""Feature mimicking (Li et al., CVPR 2017, "Mimicking Very Efficient Network for Object Detection")."""

from __future__ import annotations

from torch import Tensor

from kdloss._checks import FeatureLevels, compute_dtype, feature_levels, zero_loss


def mimic(student: FeatureLevels, teacher: FeatureLevels, *, check_finite: bool = False) -> Tensor:
    """Mean squared error between student and teacher feature maps, summed over levels.

    Per level: ``loss = 1 / (N·C·H·W) · Σ (s − t)²``.

    Args:
        student: ``(N, C, H, W)`` float tensor, or a sequence of them (one per level).
        teacher: same shapes as ``student``; treated as a constant.
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    """
    s_levels, t_levels = feature_levels("Mimic", student, teacher, check_finite=check_finite)
    return sum(mimic_level(s, t) for s, t in zip(s_levels, t_levels))


def mimic_level(student: Tensor, teacher: Tensor) -> Tensor:
    """One level of :func:`mimic` on validated tensors."""
    if student.numel() == 0:
        return zero_loss(student)
    dtype = compute_dtype(student)
    return (student.to(dtype) - teacher.detach().to(dtype)).square().mean()
