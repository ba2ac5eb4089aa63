"""Pearson-correlation feature distillation (Cao et al., NeurIPS 2022, "PKD: General Distillation Framework
for Object Detectors via Pearson Correlation Coefficient", arXiv 2207.02039)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdloss._checks import FeatureLevels, as_level_list, compute_dtype, feature_levels, zero_loss
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.pkd import pkd_levels_fit, pkd_levels_fused

STD_EPS = 1e-6


def pkd(student: FeatureLevels, teacher: FeatureLevels, *, resize_student: bool = True, impl: str = "auto",
        check_finite: bool = False) -> Tensor:
    """PKD loss, summed over levels: ``1 − r`` of every channel's student and teacher responses.

    Each channel is standardised over its ``N·H·W`` values, ``x̂ = (x − mean) / (std + 1e-6)`` (``std``
    unbiased, as mmrazor's ``PKDLoss``), then per level::

        loss = 1 / (2·N·C·H·W) · Σ (ŝ − t̂)²        (= mean over channels of 1 − Pearson r, up to the 1e-6)

    It ignores the features' scale and offset, which is why it works between detectors whose feature
    magnitudes differ.

    Args:
        student: ``(N, C, H, W)`` float tensor, or a sequence of them (one per level).
        teacher: same channels; treated as a constant (no gradient flows into it).
        resize_student: where a level's spatial sizes differ, resize the student bilinearly to the
            teacher's (mmrazor ``resize_stu=True``); ``False`` makes that an error.
        impl: ``"eager"`` (this reference), ``"compile"`` (``torch.compile`` of it, which fuses the
            statistics and the error sum), ``"fused"`` (on CUDA every level in one Triton launch each way,
            :mod:`kdloss.ops.pkd`; elsewhere, and for float64, the compiled build) or ``"auto"`` (fused on
            the CPU; on CUDA the one measured fastest there, :data:`kdloss.ops.CUDA_AUTO`).
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    """
    impl = resolve_impl("PKD", impl, student)
    level = LEVEL_IMPLS[impl]
    s_levels, t_levels = as_level_list(student), as_level_list(teacher)
    if len(s_levels) != len(t_levels):  # before the resize's zip, which would drop the extra levels
        raise ValueError(f"PKD: student has {len(s_levels)} feature level(s) but teacher has {len(t_levels)}")
    if resize_student:
        s_levels = [_resized(s, t) for s, t in zip(s_levels, t_levels)]
    s_levels, t_levels = feature_levels("PKD", s_levels, t_levels, check_finite=check_finite)
    for index, s in enumerate(s_levels):
        positions = s.shape[0] * s.shape[2] * s.shape[3]
        if positions == 1:
            raise ValueError(f"PKD: level {index} has one value per channel (shape {tuple(s.shape)}); "
                             "the standard deviation needs N·H·W ≥ 2")
    if impl == "fused":
        present = [(s, t) for s, t in zip(s_levels, t_levels) if s.numel()]
        if present and pkd_levels_fit([s for s, _ in present], [t for _, t in present]):
            empty = [s for s in s_levels if not s.numel()]
            return (pkd_levels_fused([s for s, _ in present], [t for _, t in present])
                    + (zero_loss(*empty) if empty else 0.0))
    return sum(level(s, t) if s.numel() else zero_loss(s) for s, t in zip(s_levels, t_levels))


def _resized(student, teacher):
    if (isinstance(student, Tensor) and isinstance(teacher, Tensor) and student.dim() == teacher.dim() == 4
            and student.shape[2:] != teacher.shape[2:] and student.numel()):
        return F.interpolate(student, size=tuple(teacher.shape[2:]), mode="bilinear")
    return student


def standardize(feat: Tensor) -> Tensor:
    """``(N, C, H, W)`` → the same, each channel at zero mean and unit (unbiased) std over ``N·H·W``."""
    mean = feat.mean(dim=(0, 2, 3), keepdim=True)
    std = feat.std(dim=(0, 2, 3), keepdim=True)
    return (feat - mean) / (std + STD_EPS)


def pkd_level(student: Tensor, teacher: Tensor) -> Tensor:
    """One level of :func:`pkd` on validated, non-empty tensors."""
    dtype = compute_dtype(student)
    return F.mse_loss(standardize(student.to(dtype)), standardize(teacher.detach().to(dtype))) / 2


COMPILED_LEVEL = LazyCompiled(pkd_level)
LEVEL_IMPLS = {"eager": pkd_level, "fused": COMPILED_LEVEL, "compile": COMPILED_LEVEL}
