"""Masked generative distillation (Yang et al., ECCV 2022, arXiv 2205.01529)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kdloss._checks import FeatureLevels, check_positive, compute_dtype, feature_levels, zero_loss
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.errors import error_levels_fused


def mgd_mask(
    features: Tensor, lambda_mgd: float, generator: torch.Generator | None = None
) -> Tensor:
    """Random spatial mask ``(N, 1, H, W)`` for ``(N, C, H, W)`` features: 0 with probability
    ``lambda_mgd``, else 1. Draws on ``generator``'s device (default: the features' device), so a
    seeded ``torch.Generator`` reproduces it exactly."""
    n, _, h, w = features.shape
    device = generator.device if generator is not None else features.device
    draw = torch.rand((n, 1, h, w), generator=generator, device=device)
    return (draw >= lambda_mgd).to(device=features.device, dtype=features.dtype)


def mgd(
    student: FeatureLevels,
    teacher: FeatureLevels,
    generation: Callable[[Tensor], Tensor] | Sequence[Callable[[Tensor], Tensor]],
    *,
    alpha_mgd: float = 2e-5,
    lambda_mgd: float = 0.65,
    generator: torch.Generator | None = None,
    impl: str = "auto",
    check_finite: bool = False,
) -> Tensor:
    """Masked generative distillation loss, summed over levels.

    The student's features (already in the teacher's channel count) are randomly masked and a small
    generation network must rebuild the teacher's features from what is left. Per level::

        M ~ Bernoulli(1 − lambda_mgd) of shape (N, 1, H, W)
        loss = alpha_mgd · Σ (generation(s · M) − t)² / N

    Args:
        student: ``(N, C_t, H, W)`` float tensor, or a sequence of them (one per level).
        teacher: same shapes as ``student``; treated as a constant.
        generation: one network per level (or one for a single level) mapping ``(N, C_t, H, W)`` to
            ``(N, C_t, H, W)``; :class:`kdloss.MGD` owns conv3x3 → ReLU → conv3x3 ones.
        alpha_mgd: loss scale. lambda_mgd: masking probability in ``[0, 1)``; 0 disables masking.
        generator: ``torch.Generator`` for the masks (reproducible runs).
        impl: ``"eager"``, ``"fused"`` (the generation networks run level by level, then every level's
            error sum in one pass: one Triton launch on CUDA, :func:`kdloss.ops.errors.error_levels_fused`),
            ``"compile"`` (``torch.compile`` of the generation and error, the mask drawn eagerly) or ``"auto"``.
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs); zero for an empty batch.
    """
    check_positive("MGD", "alpha_mgd", alpha_mgd)
    impl = resolve_impl("MGD", impl, student)
    if not 0.0 <= lambda_mgd < 1.0:
        raise ValueError(f"MGD: lambda_mgd must be in [0, 1), got {lambda_mgd}")
    s_levels, t_levels = feature_levels("MGD", student, teacher, check_finite=check_finite)
    networks = [generation] if callable(generation) else list(generation)
    if len(networks) != len(s_levels):
        raise ValueError(f"MGD: {len(networks)} generation network(s) for {len(s_levels)} feature level(s)")
    if impl == "fused":
        return mgd_levels_fused(s_levels, t_levels, networks, alpha_mgd, lambda_mgd, generator)
    return sum(
        mgd_level(s, t, net, alpha_mgd, lambda_mgd, generator, RECONSTRUCTION_IMPLS[impl])
        for s, t, net in zip(s_levels, t_levels, networks)
    )


def mgd_levels_fused(s_levels: list[Tensor], t_levels: list[Tensor], networks: list[Callable[[Tensor], Tensor]],
                     alpha_mgd: float, lambda_mgd: float, generator: torch.Generator | None) -> Tensor:
    """:func:`mgd` with every level's reconstruction error in one fused error sum; the masks are drawn in the
    same order as level by level (so a seeded ``generator`` gives the eager path's masks)."""
    present = [(s, t, net) for s, t, net in zip(s_levels, t_levels, networks) if s.numel()]
    empty = zero_loss(*[s for s in s_levels if not s.numel()]) if len(present) < len(s_levels) else 0.0
    if not present:
        return empty
    generated = []
    for s, _, net in present:
        masked = s.to(compute_dtype(s))
        masked = masked * mgd_mask(masked, lambda_mgd, generator)
        generated.append(net(masked).to(masked.dtype))
    scales = [alpha_mgd / s.shape[0] for s, _, _ in present]
    return error_levels_fused(generated, [t.detach() for _, t, _ in present], scales, power=2) + empty


def mgd_level(
    student: Tensor,
    teacher: Tensor,
    generation: Callable[[Tensor], Tensor],
    alpha_mgd: float,
    lambda_mgd: float,
    generator: torch.Generator | None,
    reconstruction: Callable[[Tensor, Tensor, Callable[[Tensor], Tensor]], Tensor] | None = None,
) -> Tensor:
    """One level of :func:`mgd` on validated tensors."""
    if student.numel() == 0:
        return zero_loss(student)
    s = student.to(compute_dtype(student))
    masked = s * mgd_mask(s, lambda_mgd, generator)
    error = (reconstruction or reconstruction_error)(masked, teacher.detach(), generation)
    return error * (alpha_mgd / student.shape[0])


def reconstruction_error(masked: Tensor, teacher: Tensor, generation: Callable[[Tensor], Tensor]) -> Tensor:
    """``Σ (generation(masked) − teacher)²`` in the masked features' dtype."""
    generated = generation(masked).to(masked.dtype)
    return (generated - teacher.to(masked.dtype)).square().sum()


RECONSTRUCTION_IMPLS = {
    "eager": reconstruction_error,
    "compile": LazyCompiled(reconstruction_error),
}
