"""Channel-wise distillation (Shu et al., ICCV 2021, arXiv 2011.13256)."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from kdloss._checks import FeatureLevels, check_positive, compute_dtype, feature_levels, zero_loss
from kdloss.functional.kl import softmax_kl_terms
from kdloss.ops import resolve_impl
from kdloss.ops._compile import LazyCompiled
from kdloss.ops.cwd import cwd_fused


def cwd(student: FeatureLevels, teacher: FeatureLevels, tau: float = 1.0, *, impl: str = "auto",
        check_finite: bool = False) -> Tensor:
    """Channel-wise distillation loss, summed over levels.

    Each channel map is turned into a distribution over its ``H·W`` positions; the student matches the
    teacher's by KL divergence. Per level::

        loss = tau² / (N·C) · Σ_{n,c} KL( softmax(t[n,c] / tau) ‖ softmax(s[n,c] / tau) )

    Args:
        student: ``(N, C, H, W)`` float tensor, or a sequence of them (one per level).
        teacher: same shapes as ``student``; treated as a constant (no gradient flows into it).
        tau: softmax temperature (> 0).
        impl: ``"eager"`` (this reference), ``"fused"`` (:mod:`kdloss.ops.cwd`: custom autograd Function
            that never keeps a softmax; all levels in one Triton launch on CUDA), ``"compile"``
            (``torch.compile`` of the reference) or ``"auto"`` (fused on the CPU; on CUDA the one measured
            fastest there, :data:`kdloss.ops.CUDA_AUTO`). All give the same numbers.
        check_finite: raise ``ValueError`` if either side holds NaN/inf.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs). An empty batch gives a zero that
        still back-propagates.
    """
    check_positive("CWD", "tau", tau)
    impl = resolve_impl("CWD", impl, student)
    s_levels, t_levels = feature_levels("CWD", student, teacher, check_finite=check_finite)
    if impl == "fused":
        return cwd_fused(s_levels, t_levels, tau)
    level = LEVEL_IMPLS[impl]
    return sum(level(s, t, tau) if s.numel() else zero_loss(s) for s, t in zip(s_levels, t_levels))


def cwd_level(student: Tensor, teacher: Tensor, tau: float) -> Tensor:
    """One level of :func:`cwd` on validated, non-empty ``(N, C, H, W)`` tensors."""
    n, c = student.shape[:2]
    dtype = compute_dtype(student)
    s = rearrange(student.to(dtype), "n c h w -> (n c) (h w)") / tau
    t = rearrange(teacher.detach().to(dtype), "n c h w -> (n c) (h w)") / tau
    kl = softmax_kl_terms(t, s, dim=1).sum()
    return kl * (tau**2 / (n * c))


LEVEL_IMPLS = {"eager": cwd_level, "compile": LazyCompiled(cwd_level)}
