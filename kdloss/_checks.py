"""Input validation shared by every loss: one place that turns bad input into a sentence.

Public functions validate at the boundary and then call private helpers that trust their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

FeatureLevels = Tensor | Sequence[Tensor]


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float64 stays float64 (for gradcheck); every other floating dtype is computed in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def zero_loss(*tensors: Tensor) -> Tensor:
    """A scalar zero connected to the graph of ``tensors`` so that ``backward()`` still works."""
    total = sum(t.sum() for t in tensors if t.requires_grad)
    zero = torch.zeros((), dtype=compute_dtype(tensors[0]), device=tensors[0].device)
    return zero + 0.0 * total if isinstance(total, Tensor) else zero


def as_level_list(levels: FeatureLevels) -> list[Tensor]:
    if isinstance(levels, Tensor):
        return [levels]
    return list(levels)


def check_tensor(loss: str, what: str, tensor: object, *, check_finite: bool = False) -> None:
    """Type, dtype and (optionally) finiteness of one tensor. ``what`` names it in the message."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{loss}: {what} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"{loss}: {what} must be a floating-point tensor, got dtype {tensor.dtype}")
    if check_finite and tensor.numel() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{loss}: {what} contains {bad} NaN/inf value(s)")


def check_same_device(loss: str, what: str, student: Tensor, teacher: Tensor) -> None:
    if student.device != teacher.device:
        raise ValueError(
            f"{loss}: student and teacher {what} are on different devices: {student.device} vs {teacher.device}"
        )


def feature_levels(
    loss: str,
    student: FeatureLevels,
    teacher: FeatureLevels,
    *,
    check_channels: bool = True,
    check_finite: bool = False,
) -> tuple[list[Tensor], list[Tensor]]:
    """Validate a student/teacher pair of feature maps, one ``(N, C, H, W)`` tensor per level.

    Raises ``ValueError`` naming the loss, the level and both shapes for a level-count, rank, batch,
    spatial or (if ``check_channels``) channel mismatch, a non-floating dtype or different devices.
    ``check_finite`` additionally rejects NaN/inf in either side.
    """
    s_levels, t_levels = as_level_list(student), as_level_list(teacher)
    if len(s_levels) != len(t_levels):
        raise ValueError(
            f"{loss}: student has {len(s_levels)} feature level(s) but teacher has {len(t_levels)}"
        )
    if not s_levels:
        raise ValueError(f"{loss}: no feature levels given")
    for level, (s, t) in enumerate(zip(s_levels, t_levels)):
        check_tensor(loss, f"student features at level {level}", s, check_finite=check_finite)
        check_tensor(loss, f"teacher features at level {level}", t, check_finite=check_finite)
        check_same_device(loss, f"features at level {level}", s, t)
        if s.dim() != 4 or t.dim() != 4:
            raise ValueError(
                f"{loss}: features must be (N, C, H, W) at level {level}: "
                f"student {tuple(s.shape)} vs teacher {tuple(t.shape)}"
            )
        if s.shape[0] != t.shape[0]:
            raise ValueError(
                f"{loss}: student and teacher batch sizes differ at level {level}: "
                f"{s.shape[0]} vs {t.shape[0]} (shapes {tuple(s.shape)} vs {tuple(t.shape)})"
            )
        if s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f"{loss}: student and teacher spatial sizes differ at level {level}: "
                f"{tuple(s.shape[2:])} vs {tuple(t.shape[2:])}"
            )
        if check_channels and s.shape[1] != t.shape[1]:
            raise ValueError(
                f"{loss}: student and teacher channels differ at level {level}: {s.shape[1]} vs "
                f"{t.shape[1]} (shapes {tuple(s.shape)} vs {tuple(t.shape)}); pass student_channels and "
                f"teacher_channels to the module to learn a 1x1 align conv"
            )
    return s_levels, t_levels


def check_positive(loss: str, name: str, value: float) -> None:
    """``value`` is a finite number above 0 (NaN and inf are refused), else a ``ValueError`` naming it."""
    if not (_is_number(value) and math.isfinite(float(value)) and value > 0):
        raise ValueError(f"{loss}: {name} must be > 0 and finite, got {value!r}")


def check_non_negative(loss: str, name: str, value: float) -> None:
    """``value`` is a finite number of at least 0 (a weight), else a ``ValueError`` naming it."""
    if not (_is_number(value) and math.isfinite(float(value)) and value >= 0):
        raise ValueError(f"{loss}: {name} must be >= 0 and finite, got {value!r}")


def _is_number(value: object) -> bool:
    try:
        float(value)  # python and numpy numbers, 0-d tensors
    except (TypeError, ValueError, RuntimeError):
        return False
    return not isinstance(value, (bool, str))
