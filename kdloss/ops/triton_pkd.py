"""One Triton launch each way for PKD over all its levels: one program per channel of any level.

For a channel with ``M = N·H·W`` values, ``a = s − mean(s)``, ``b = t − mean(t)``, ``σ`` the unbiased standard
deviations and ``d = σ + 1e-6`` (:data:`kdloss.functional.pkd.STD_EPS`; mmrazor's ``PKDLoss``, kdloss's
:func:`kdloss.functional.pkd.pkd_level`)::

    Σ (ŝ − t̂)² = Σa² / d_s² + Σb² / d_t² − 2 Σab / (d_s d_t)
    ∂/∂s_j     = 2 (coef_a · a_j − coef_b · b_j),   coef_a = 1/d_s² − (Σa²/d_s − Σab/d_t) / (d_s² (M − 1) σ_s),
                                                     coef_b = 1 / (d_s d_t)

(the mean's part of the gradient, ``Σ_j ∂/∂ŝ_j``, is 0: both sides are centred). Forward reads both inputs twice
(the means, then the centred sums) and writes each channel's scaled term and four floats (the means and the two
coefficients); backward reads both once and writes the gradient, the upstream gradient read on the device. A
channel whose student values are all equal (``σ_s = 0``) gets the ``coef_a`` term's second part as 0, where
autograd through ``std`` gives NaN. Up to :data:`MAX_LEVELS` levels per launch; sizes are not specialised on.

The torch twin is :func:`kdloss.functional.pkd.pkd_level` (compiled); :mod:`kdloss.ops.pkd` chooses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdloss.ops.triton_kernels import AVAILABLE

MAX_LEVELS = 4
BLOCK = 1024

if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit
    def _pkd_channel(S, T, G, n, channels, hw, scale, channel, row, LOSS, STATS, rows, FACTOR,
                     BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
        count = n * hw
        if BACKWARD:
            mean_s, mean_t = tl.load(STATS + row), tl.load(STATS + rows + row)
            coef_a, coef_b = tl.load(STATS + 2 * rows + row), tl.load(STATS + 3 * rows + row)
            factor = tl.load(FACTOR) * 2.0 * scale
            for start in range(0, count, BLOCK):
                idx = start + tl.arange(0, BLOCK)
                mask = idx < count
                offset = ((idx // hw).to(tl.int64) * channels + channel) * hw + idx % hw
                a = tl.load(S + offset, mask=mask, other=0.0).to(tl.float32) - mean_s
                b = tl.load(T + offset, mask=mask, other=0.0).to(tl.float32) - mean_t
                grad = (coef_a * a - coef_b * b) * factor
                tl.store(G + offset, grad.to(G.dtype.element_ty), mask=mask)
        else:
            sum_s = tl.sum(tl.zeros([BLOCK], tl.float32), 0)
            sum_t = sum_s
            for start in range(0, count, BLOCK):
                idx = start + tl.arange(0, BLOCK)
                mask = idx < count
                offset = ((idx // hw).to(tl.int64) * channels + channel) * hw + idx % hw
                sum_s += tl.sum(tl.load(S + offset, mask=mask, other=0.0).to(tl.float32), 0)
                sum_t += tl.sum(tl.load(T + offset, mask=mask, other=0.0).to(tl.float32), 0)
            mean_s = sum_s / count
            mean_t = sum_t / count
            ss = sum_s * 0.0
            tt = ss
            st = ss
            for start in range(0, count, BLOCK):
                idx = start + tl.arange(0, BLOCK)
                mask = idx < count
                offset = ((idx // hw).to(tl.int64) * channels + channel) * hw + idx % hw
                a = tl.where(mask, tl.load(S + offset, mask=mask, other=0.0).to(tl.float32) - mean_s, 0.0)
                b = tl.where(mask, tl.load(T + offset, mask=mask, other=0.0).to(tl.float32) - mean_t, 0.0)
                ss += tl.sum(a * a, 0)
                tt += tl.sum(b * b, 0)
                st += tl.sum(a * b, 0)
            sigma_s = tl.sqrt(ss / (count - 1))
            sigma_t = tl.sqrt(tt / (count - 1))
            d_s = sigma_s + 1e-6
            d_t = sigma_t + 1e-6
            loss = ss / (d_s * d_s) + tt / (d_t * d_t) - 2.0 * st / (d_s * d_t)
            tl.store(LOSS + row, loss * scale)
            spread_scale = d_s * d_s * (count - 1) * tl.where(sigma_s > 0, sigma_s, 1.0)
            spread = tl.where(sigma_s > 0, (ss / d_s - st / d_t) / spread_scale, 0.0)
            tl.store(STATS + row, mean_s)
            tl.store(STATS + rows + row, mean_t)
            tl.store(STATS + 2 * rows + row, 1.0 / (d_s * d_s) - spread)
            tl.store(STATS + 3 * rows + row, 1.0 / (d_s * d_t))

    @triton.jit(do_not_specialize=["n0", "c0", "hw0", "n1", "c1", "hw1", "n2", "c2", "hw2", "n3", "c3", "hw3",
                                   "first1", "first2", "first3", "rows"])
    def _pkd_levels_kernel(S0, T0, G0, n0, c0, hw0, scale0, S1, T1, G1, n1, c1, hw1, scale1,
                           S2, T2, G2, n2, c2, hw2, scale2, S3, T3, G3, n3, c3, hw3, scale3,
                           first1, first2, first3, LOSS, STATS, rows, FACTOR, BACKWARD: tl.constexpr,
                           BLOCK: tl.constexpr):
        row = tl.program_id(0)
        if row < first1:
            _pkd_channel(S0, T0, G0, n0, c0, hw0, scale0, row, row, LOSS, STATS, rows, FACTOR, BACKWARD, BLOCK)
        elif row < first2:
            _pkd_channel(S1, T1, G1, n1, c1, hw1, scale1, row - first1, row, LOSS, STATS, rows, FACTOR, BACKWARD,
                         BLOCK)
        elif row < first3:
            _pkd_channel(S2, T2, G2, n2, c2, hw2, scale2, row - first2, row, LOSS, STATS, rows, FACTOR, BACKWARD,
                         BLOCK)
        else:
            _pkd_channel(S3, T3, G3, n3, c3, hw3, scale3, row - first3, row, LOSS, STATS, rows, FACTOR, BACKWARD,
                         BLOCK)


def _launch(students: Sequence[Tensor], teachers: Sequence[Tensor], grads: Sequence[Tensor], loss: Tensor,
            stats: Tensor, factor: Tensor | None) -> None:
    levels = len(students)
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"PKD: 1 to {MAX_LEVELS} levels per launch, got {levels}")
    args, channels = [], []
    for level in range(MAX_LEVELS):
        used = level < levels
        s, t = (students[level], teachers[level]) if used else (students[0], teachers[0])
        n, c, h, w = s.shape
        args += [s, t, grads[level] if used and grads else s, n if used else 0, c, h * w,
                 1.0 / (2.0 * s.numel()) if used else 0.0]
        channels.append(c if used else 0)
    firsts = [sum(channels[:level]) for level in range(1, MAX_LEVELS)]
    rows = sum(channels)
    backward = factor is not None
    _pkd_levels_kernel[(rows,)](*args, *firsts, loss, stats, rows, factor if backward else loss,
                                BACKWARD=backward, BLOCK=BLOCK)


def pkd_levels_forward(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """``(N_l, C_l, H_l, W_l)`` levels (contiguous, non-empty, ``N·H·W ≥ 2``), 1 to :data:`MAX_LEVELS` → (the sum of
    :func:`kdloss.functional.pkd.pkd_level` over them, a float32 scalar; the ``(4, Σ C_l)`` float32 statistics
    backward takes), in one launch."""
    rows = sum(s.shape[1] for s in students)
    loss = torch.empty(rows, dtype=torch.float32, device=students[0].device)
    stats = torch.empty(4, rows, dtype=torch.float32, device=students[0].device)
    _launch(students, teachers, (), loss, stats, None)
    return loss.sum(), stats


def pkd_levels_backward(students: Sequence[Tensor], teachers: Sequence[Tensor], stats: Tensor, factor: Tensor
                        ) -> list[Tensor]:
    """Every level's gradient (the students' dtypes) from the forward's statistics, in one launch; ``factor`` a
    one-element tensor read on the device."""
    grads = [torch.empty_like(s) for s in students]
    _launch(students, teachers, grads, stats, stats, factor.reshape(1).float())
    return grads
