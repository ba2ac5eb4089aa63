"""One Triton launch each way for PKD over all its levels: one program per channel of any level.

For a channel with ``M = N·H·W`` values, ``a = s − mean(s)``, ``b = t − mean(t)``, ``σ`` the unbiased standard
deviations and ``d = σ + 1e-6`` (:data:`kdloss.functional.pkd.STD_EPS`; mmrazor's ``PKDLoss``, kdloss's
:func:`kdloss.functional.pkd.pkd_level`)::

    r_j        = a_j / d_s − b_j / d_t                     (ŝ − t̂)
    Σ (ŝ − t̂)² = Σ r²
    ∂/∂s_j     = 2 (r_j / d_s − spread · a_j),      spread = Σ a·r / (d_s² (M − 1) σ_s)

(the mean's part of the gradient, ``Σ_j ∂/∂ŝ_j``, is 0: both sides are centred).
Forward reads both inputs three times (the means; the centred sums of squares, for σ; ``r``, summed directly so
that a student near its teacher, or a scaled copy of it, loses nothing to cancellation) and writes each
channel's scaled term and five floats (the means, 1/d_s, 1/d_t and the spread); backward reads both once, forms
``r`` again and writes the gradient, the upstream gradient read on the device. A channel whose student values
are all equal (``σ_s = 0``) gets the spread as 0, as torch's ``std`` backward masks it there. Up to
:data:`MAX_LEVELS` levels per launch; sizes are not specialised on.

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
    def _centred_block(S, T, start, count, channels, channel, hw, mean_s, mean_t, BLOCK: tl.constexpr):
        """One block of a channel's values, centred (padded lanes 0), with their offsets and mask."""
        idx = start + tl.arange(0, BLOCK)
        mask = idx < count
        offset = ((idx // hw).to(tl.int64) * channels + channel) * hw + idx % hw
        a = tl.where(mask, tl.load(S + offset, mask=mask, other=0.0).to(tl.float32) - mean_s, 0.0)
        b = tl.where(mask, tl.load(T + offset, mask=mask, other=0.0).to(tl.float32) - mean_t, 0.0)
        return a, b, offset, mask

    @triton.jit
    def _pkd_channel(S, T, G, n, channels, hw, scale, channel, row, LOSS, STATS, rows, FACTOR,
                     BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
        count = n * hw
        if BACKWARD:
            mean_s, mean_t = tl.load(STATS + row), tl.load(STATS + rows + row)
            inv_s, inv_t = tl.load(STATS + 2 * rows + row), tl.load(STATS + 3 * rows + row)
            spread = tl.load(STATS + 4 * rows + row)
            factor = tl.load(FACTOR) * 2.0 * scale
            for start in range(0, count, BLOCK):
                a, b, offset, mask = _centred_block(S, T, start, count, channels, channel, hw, mean_s, mean_t, BLOCK)
                grad = ((a * inv_s - b * inv_t) * inv_s - spread * a) * factor
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
            for start in range(0, count, BLOCK):
                a, b, _, _ = _centred_block(S, T, start, count, channels, channel, hw, mean_s, mean_t, BLOCK)
                ss += tl.sum(a * a, 0)
                tt += tl.sum(b * b, 0)
            sigma_s = tl.sqrt(ss / (count - 1))
            sigma_t = tl.sqrt(tt / (count - 1))
            d_s = sigma_s + 1e-6
            inv_s = 1.0 / d_s
            inv_t = 1.0 / (sigma_t + 1e-6)
            # the loss and the spread from the standardised difference r itself: Σa²/d_s² + Σb²/d_t² − 2Σab/(d_s d_t)
            # cancels to float32's rounding of M when the student is near the teacher (or a scaled copy of it)
            loss = ss * 0.0
            spread_sum = loss
            for start in range(0, count, BLOCK):
                a, b, _, _ = _centred_block(S, T, start, count, channels, channel, hw, mean_s, mean_t, BLOCK)
                r = a * inv_s - b * inv_t
                loss += tl.sum(r * r, 0)
                spread_sum += tl.sum(a * r, 0)
            tl.store(LOSS + row, loss * scale)
            spread_scale = d_s * d_s * (count - 1) * tl.where(sigma_s > 0, sigma_s, 1.0)
            spread = tl.where(sigma_s > 0, spread_sum / spread_scale, 0.0)
            tl.store(STATS + row, mean_s)
            tl.store(STATS + rows + row, mean_t)
            tl.store(STATS + 2 * rows + row, inv_s)
            tl.store(STATS + 3 * rows + row, inv_t)
            tl.store(STATS + 4 * rows + row, spread)

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
    :func:`kdloss.functional.pkd.pkd_level` over them, a float32 scalar; the ``(5, Σ C_l)`` float32 statistics
    backward takes), in one launch."""
    rows = sum(s.shape[1] for s in students)
    loss = torch.empty(rows, dtype=torch.float32, device=students[0].device)
    stats = torch.empty(5, rows, dtype=torch.float32, device=students[0].device)
    _launch(students, teachers, (), loss, stats, None)
    return loss.sum(), stats


def pkd_levels_backward(students: Sequence[Tensor], teachers: Sequence[Tensor], stats: Tensor, factor: Tensor
                        ) -> list[Tensor]:
    """Every level's gradient (the students' dtypes) from the forward's statistics, in one launch; ``factor`` a
    one-element tensor read on the device."""
    grads = [torch.empty_like(s) for s in students]
    _launch(students, teachers, grads, stats, stats, factor.reshape(1).float())
    return grads
