"""One Triton launch for a loss's error sums over all its levels (Mimic's feature levels, L1/L2's class and box
logits): ``Σ_l scale_l · Σ |s_l − t_l|^power`` with power 1 or 2.

Each program takes one block of one level; which level is read from the program's index against the levels'
first blocks (host integers: no device sync, no recompile across sizes or scales). Forward: each program writes
its block's scaled partial sum, and the partials are summed. Backward: the same launch writes each block's
gradient ``g · scale_l · 2 (s − t)`` (or ``g · scale_l · sign(s − t)``), the upstream ``g`` read on the device.
Forward reads both inputs once and saves nothing new; backward reads them again and writes the gradient: the
traffic of writing the gradient in the forward and scaling it in the backward, with one rounding to the
student's dtype instead of two. Up to :data:`MAX_LEVELS` levels per launch.

The torch twin is :mod:`kdloss.ops.errors` (``ErrorLevelsFunction`` runs it for the other kernels); both are
tested against the plain formula, on the CPU with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdloss.ops.triton_kernels import AVAILABLE

MAX_LEVELS = 4
BLOCK = 2048

if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit
    def _error_block(S, T, G, n, scale, block, PARTIAL, program, FACTOR, POWER: tl.constexpr,
                     BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
        idx = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = idx < n
        diff = tl.load(S + idx, mask=mask, other=0.0).to(tl.float32) - tl.load(T + idx, mask=mask,
                                                                                other=0.0).to(tl.float32)
        if BACKWARD:
            factor = scale * tl.load(FACTOR)
            if POWER == 2:
                grad = diff * (2.0 * factor)
            else:  # sign(s − t) · factor, 0 where s − t is 0 or NaN (as torch's sign and abs backward)
                grad = tl.where(diff > 0, factor, tl.where(diff < 0, -factor, 0.0))
            tl.store(G + idx, grad.to(G.dtype.element_ty), mask=mask)
        else:
            error = diff * diff if POWER == 2 else tl.abs(diff)
            tl.store(PARTIAL + program, tl.sum(error, 0) * scale)

    @triton.jit(do_not_specialize=["n0", "n1", "n2", "n3", "first1", "first2", "first3"])
    def _error_levels_kernel(S0, T0, G0, n0, scale0, S1, T1, G1, n1, scale1, S2, T2, G2, n2, scale2,
                             S3, T3, G3, n3, scale3, first1, first2, first3, PARTIAL, FACTOR, POWER: tl.constexpr,
                             BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
        program = tl.program_id(0)
        if program < first1:
            _error_block(S0, T0, G0, n0, scale0, program, PARTIAL, program, FACTOR, POWER, BACKWARD, BLOCK)
        elif program < first2:
            _error_block(S1, T1, G1, n1, scale1, program - first1, PARTIAL, program, FACTOR, POWER, BACKWARD,
                         BLOCK)
        elif program < first3:
            _error_block(S2, T2, G2, n2, scale2, program - first2, PARTIAL, program, FACTOR, POWER, BACKWARD,
                         BLOCK)
        else:
            _error_block(S3, T3, G3, n3, scale3, program - first3, PARTIAL, program, FACTOR, POWER, BACKWARD,
                         BLOCK)


def _level_slots(what: str, students: Sequence[Tensor], teachers: Sequence[Tensor], grads: Sequence[Tensor],
                 sizes: Sequence[int], scales: Sequence[float], programs: Sequence[int]) -> tuple[list, list[int]]:
    """The :data:`MAX_LEVELS` argument slots of a levels kernel, ``(S, T, G, size, scale)`` per level (an unused
    slot: level 0's pointers, size 0, no programs), and the first program of levels 1, 2, 3 (``programs``: each
    level's program count)."""
    levels = len(students)
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"{what}: 1 to {MAX_LEVELS} levels per launch, got {levels}")
    args = []
    for level in range(MAX_LEVELS):
        used = level < levels
        s, t = (students[level], teachers[level]) if used else (students[0], teachers[0])
        args += [s, t, grads[level] if used and grads else s, sizes[level] if used else 0,
                 float(scales[level]) if used else 0.0]
    return args, [sum(programs[:level]) for level in range(1, MAX_LEVELS)]


def _launch(students: Sequence[Tensor], teachers: Sequence[Tensor], grads: Sequence[Tensor], scales: Sequence[float],
            power: int, partial: Tensor | None, factor: Tensor | None) -> None:
    sizes = [s.numel() for s in students]
    blocks = [triton.cdiv(n, BLOCK) for n in sizes]
    args, firsts = _level_slots("error sums", students, teachers, grads, sizes, scales, blocks)
    backward = factor is not None
    _error_levels_kernel[(sum(blocks),)](*args, *firsts, students[0] if backward else partial,
                                         factor if backward else partial, POWER=power, BACKWARD=backward,
                                         BLOCK=BLOCK)


def one_launch_fits(tensors: Sequence[Tensor]) -> bool:
    """Whether the kernels here take these tensors: all on one device, none float64 (they compute in float32)."""
    device = tensors[0].device
    return all(t.device == device and t.dtype != torch.float64 for t in tensors)


def level_groups(levels: int) -> list[range]:
    """The levels of each launch: :data:`MAX_LEVELS` at a time."""
    return [range(first, min(first + MAX_LEVELS, levels)) for first in range(0, levels, MAX_LEVELS)]


def total_blocks(students: Sequence[Tensor]) -> int:
    return sum(triton.cdiv(s.numel(), BLOCK) for s in students)


def error_levels_forward(students: Sequence[Tensor], teachers: Sequence[Tensor], scales: Sequence[float],
                         power: int) -> Tensor:
    """``Σ_l scale_l · Σ |s_l − t_l|^power`` as a float32 scalar, in one launch (and the partials' sum).

    ``students``/``teachers``: 1 to :data:`MAX_LEVELS` pairs of same-shape contiguous tensors on one device.
    """
    blocks = total_blocks(students)
    if blocks == 0:
        return torch.zeros((), dtype=torch.float32, device=students[0].device)
    partial = torch.empty(blocks, dtype=torch.float32, device=students[0].device)
    _launch(students, teachers, (), scales, power, partial, None)
    return partial.sum()


def error_levels_backward(students: Sequence[Tensor], teachers: Sequence[Tensor], scales: Sequence[float],
                          power: int, factor: Tensor) -> list[Tensor]:
    """The gradients w.r.t. each ``s_l``, ``factor · scale_l · 2 (s_l − t_l)`` (power 2) or
    ``factor · scale_l · sign(s_l − t_l)`` (power 1), computed in float32 and rounded once to the student's
    dtype, in one launch; ``factor`` is a one-element float32 tensor read on the device (no host sync)."""
    grads = [torch.empty_like(s) for s in students]
    if total_blocks(students):
        _launch(students, teachers, grads, scales, power, None, factor.reshape(1).float())
    return grads


# CWD: one program per channel map (row) of any level; an online log-sum-exp over the row gives lse(s), lse(t)
# and Σ p_t (t − s) in one read of both inputs (forward); backward writes factor · scale_l · (p_s − p_t).
CWD_BLOCK = 1024

if AVAILABLE:

    @triton.jit
    def _cwd_row(S, T, G, length, scale, row, KL, LSE_S, LSE_T, out_row, FACTOR, inv_tau, BACKWARD: tl.constexpr,
                 BLOCK: tl.constexpr):
        s_row, t_row = S + row.to(tl.int64) * length, T + row.to(tl.int64) * length
        if BACKWARD:
            lse_s, lse_t = tl.load(LSE_S + out_row), tl.load(LSE_T + out_row)
            factor = tl.load(FACTOR) * scale
            g_row = G + row.to(tl.int64) * length
            for start in range(0, length, BLOCK):
                idx = start + tl.arange(0, BLOCK)
                mask = idx < length
                s = tl.load(s_row + idx, mask=mask, other=0.0).to(tl.float32) * inv_tau
                t = tl.load(t_row + idx, mask=mask, other=0.0).to(tl.float32) * inv_tau
                grad = (tl.exp(s - lse_s) - tl.exp(t - lse_t)) * factor
                tl.store(g_row + idx, grad.to(G.dtype.element_ty), mask=mask)
        else:
            m_s = tl.max(tl.full([BLOCK], float("-inf"), tl.float32), 0)
            m_t = m_s
            d_s = tl.sum(tl.zeros([BLOCK], tl.float32), 0)
            d_t = d_s
            acc = d_s
            for start in range(0, length, BLOCK):
                idx = start + tl.arange(0, BLOCK)
                mask = idx < length
                s = tl.load(s_row + idx, mask=mask, other=float("-inf")).to(tl.float32) * inv_tau
                t = tl.load(t_row + idx, mask=mask, other=float("-inf")).to(tl.float32) * inv_tau
                new_m_s = tl.maximum(m_s, tl.max(s, 0))
                d_s = d_s * tl.exp(m_s - new_m_s) + tl.sum(tl.exp(s - new_m_s), 0)
                m_s = new_m_s
                new_m_t = tl.maximum(m_t, tl.max(t, 0))
                rescale = tl.exp(m_t - new_m_t)
                e_t = tl.exp(t - new_m_t)
                d_t = d_t * rescale + tl.sum(e_t, 0)
                diff = tl.where(mask, t, 0.0) - tl.where(mask, s, 0.0)  # masked lanes hold -inf in both
                acc = acc * rescale + tl.sum(e_t * diff, 0)
                m_t = new_m_t
            lse_s = m_s + tl.log(d_s)
            lse_t = m_t + tl.log(d_t)
            tl.store(KL + out_row, (acc / d_t + lse_s - lse_t) * scale)
            tl.store(LSE_S + out_row, lse_s)
            tl.store(LSE_T + out_row, lse_t)

    @triton.jit(do_not_specialize=["length0", "length1", "length2", "length3", "first1", "first2", "first3"])
    def _cwd_levels_kernel(S0, T0, G0, length0, scale0, S1, T1, G1, length1, scale1, S2, T2, G2, length2, scale2,
                           S3, T3, G3, length3, scale3, first1, first2, first3, KL, LSE_S, LSE_T, FACTOR, inv_tau,
                           BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        if row < first1:
            _cwd_row(S0, T0, G0, length0, scale0, row, KL, LSE_S, LSE_T, row, FACTOR, inv_tau, BACKWARD, BLOCK)
        elif row < first2:
            _cwd_row(S1, T1, G1, length1, scale1, row - first1, KL, LSE_S, LSE_T, row, FACTOR, inv_tau, BACKWARD,
                     BLOCK)
        elif row < first3:
            _cwd_row(S2, T2, G2, length2, scale2, row - first2, KL, LSE_S, LSE_T, row, FACTOR, inv_tau, BACKWARD,
                     BLOCK)
        else:
            _cwd_row(S3, T3, G3, length3, scale3, row - first3, KL, LSE_S, LSE_T, row, FACTOR, inv_tau, BACKWARD,
                     BLOCK)


def _cwd_launch(students: Sequence[Tensor], teachers: Sequence[Tensor], grads: Sequence[Tensor],
                scales: Sequence[float], inv_tau: float, stats: tuple[Tensor, Tensor, Tensor],
                factor: Tensor | None) -> None:
    rows = [s.shape[0] for s in students]
    args, firsts = _level_slots("CWD", students, teachers, grads, [s.shape[1] for s in students], scales, rows)
    block = min(CWD_BLOCK, triton.next_power_of_2(max(max(s.shape[1] for s in students), 16)))
    kl, lse_s, lse_t = stats
    backward = factor is not None
    _cwd_levels_kernel[(sum(rows),)](*args, *firsts, kl, lse_s, lse_t, factor if backward else kl, inv_tau,
                                     BACKWARD=backward, BLOCK=block)


def cwd_levels_forward(students: Sequence[Tensor], teachers: Sequence[Tensor], scales: Sequence[float],
                       inv_tau: float) -> tuple[Tensor, Tensor, Tensor]:
    """Rows ``(R_l, L_l)`` of 1 to :data:`MAX_LEVELS` levels (contiguous, non-empty) → (``Σ_l scale_l · Σ_r
    KL(softmax(t_r·inv_tau) ‖ softmax(s_r·inv_tau))`` float32 scalar, ``lse_s``, ``lse_t``, each ``(Σ_l R_l,)``
    float32, level after level), in one launch."""
    total_rows = sum(s.shape[0] for s in students)
    kl, lse_s, lse_t = (torch.empty(total_rows, dtype=torch.float32, device=students[0].device) for _ in range(3))
    _cwd_launch(students, teachers, (), scales, inv_tau, (kl, lse_s, lse_t), None)
    return kl.sum(), lse_s, lse_t


def cwd_levels_backward(students: Sequence[Tensor], teachers: Sequence[Tensor], lse_s: Tensor, lse_t: Tensor,
                        scales: Sequence[float], inv_tau: float, factor: Tensor) -> list[Tensor]:
    """``factor · scale_l · (softmax(s·inv_tau) − softmax(t·inv_tau))`` for every level, from the forward's
    ``lse`` rows, in the students' dtypes, in one launch; ``factor`` a one-element tensor read on the device."""
    grads = [torch.empty_like(s) for s in students]
    # backward writes no KL: its slot takes lse_s, never stored to
    _cwd_launch(students, teachers, grads, scales, inv_tau, (lse_s, lse_s, lse_t), factor.reshape(1).float())
    return grads
