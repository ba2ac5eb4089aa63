"""One Triton launch each way for the KL of DFL box distributions weighted by the teacher's top class score: LD's
whole loss, and CrossKD's KL term (the same sum, other constants).

For anchors ``a`` (rows of ``B·A``), sides ``k`` and bins ``j`` (``reg_max`` of them), with ``s``, ``t`` the box
logits divided by the temperature ``T`` and ``w_a = σ(max_c teacher_cls_ac)``::

    total = bin_scale · Σ_a w_a · Σ_k KL(softmax(t_ak) ‖ softmax(s_ak)),     soft_count = Σ_a w_a
    ∂total/∂student_akj = bin_scale / T · w_a · (softmax(s_ak)_j − softmax(t_ak)_j)

Each program takes :data:`ANCHORS` anchors as a ``(anchors, 4, bins)`` tile: the class scores' max (a loop over
class blocks), the four softmaxes and their KLs in one read of the three inputs; forward writes the program's
partial sums and each anchor's ``w_a`` (saved for backward), backward recomputes both softmaxes and writes the
gradient, the upstream gradient read on the device. Sizes are not specialised on (no recompile across batch
sizes or anchor counts).

The torch twin is :func:`kdloss.functional.ld.ld_terms`; :mod:`kdloss.ops.ld` chooses between them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdloss.ops.triton_kernels import AVAILABLE

ANCHORS = 16
CLASS_BLOCK = 128

if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["anchors", "classes"])
    def _box_kl_kernel(S, T, CLS, G, W, PARTIAL, COUNT, FACTOR, anchors, classes, inv_tau, bin_scale,
                       BINS: tl.constexpr, BINS_P2: tl.constexpr, ANCHORS: tl.constexpr,
                       CLASS_BLOCK: tl.constexpr, BACKWARD: tl.constexpr):
        program = tl.program_id(0)
        anchor = program.to(tl.int64) * ANCHORS + tl.arange(0, ANCHORS)  # (ANCHORS,)
        anchor_ok = anchor < anchors
        side = tl.arange(0, 4)
        bin_ = tl.arange(0, BINS_P2)
        offsets = (anchor[:, None, None] * 4 + side[None, :, None]) * BINS + bin_[None, None, :]
        mask = anchor_ok[:, None, None] & (bin_ < BINS)[None, None, :]
        s = tl.load(S + offsets, mask=mask, other=float("-inf")).to(tl.float32) * inv_tau
        t = tl.load(T + offsets, mask=mask, other=float("-inf")).to(tl.float32) * inv_tau
        max_s = tl.max(s, 2)
        max_t = tl.max(t, 2)
        safe_s = tl.where(anchor_ok[:, None], max_s, 0.0)  # padded anchors: all -inf, kept finite
        safe_t = tl.where(anchor_ok[:, None], max_t, 0.0)
        e_s = tl.exp(s - safe_s[:, :, None])
        e_t = tl.exp(t - safe_t[:, :, None])
        sum_s = tl.where(anchor_ok[:, None], tl.sum(e_s, 2), 1.0)
        sum_t = tl.where(anchor_ok[:, None], tl.sum(e_t, 2), 1.0)
        if BACKWARD:
            w = tl.load(W + anchor, mask=anchor_ok, other=0.0)
            factor = tl.load(FACTOR) * bin_scale * inv_tau
            grad = (e_s / sum_s[:, :, None] - e_t / sum_t[:, :, None]) * (w * factor)[:, None, None]
            tl.store(G + offsets, grad.to(G.dtype.element_ty), mask=mask)
        else:
            best = tl.full([ANCHORS], float("-inf"), tl.float32)
            for start in range(0, classes, CLASS_BLOCK):
                cls_idx = start + tl.arange(0, CLASS_BLOCK)
                cls_mask = anchor_ok[:, None] & (cls_idx < classes)[None, :]
                scores = tl.load(CLS + anchor[:, None] * classes + cls_idx[None, :], mask=cls_mask,
                                 other=float("-inf")).to(tl.float32)
                best = tl.maximum(best, tl.max(scores, 1))
            w = tl.where(anchor_ok, tl.sigmoid(best), 0.0)
            tl.store(W + anchor, w, mask=anchor_ok)
            diff = tl.where(mask, t, 0.0) - tl.where(mask, s, 0.0)  # masked lanes hold -inf in both
            kl = (tl.sum(e_t * diff, 2) / sum_t + (safe_s + tl.log(sum_s)) - (safe_t + tl.log(sum_t)))
            kl = tl.where(anchor_ok[:, None], kl, 0.0)
            tl.store(PARTIAL + program, tl.sum(tl.sum(kl, 1) * w, 0) * bin_scale)
            tl.store(COUNT + program, tl.sum(w, 0))


def _programs(anchors: int) -> int:
    return triton.cdiv(anchors, ANCHORS)


def _launch(student: Tensor, teacher: Tensor, teacher_cls: Tensor, grad: Tensor | None, weights: Tensor,
            partial: Tensor | None, count: Tensor | None, factor: Tensor | None, inv_tau: float,
            bin_scale: float) -> None:
    anchors, bins = student.shape[0], student.shape[-1]
    backward = factor is not None
    _box_kl_kernel[(_programs(anchors),)](
        student, teacher, teacher_cls, grad if backward else student, weights,
        weights if backward else partial, weights if backward else count, factor if backward else weights,
        anchors, teacher_cls.shape[-1], inv_tau, bin_scale, BINS=bins, BINS_P2=triton.next_power_of_2(bins),
        ANCHORS=ANCHORS, CLASS_BLOCK=CLASS_BLOCK, BACKWARD=backward)


def box_kl_forward(student: Tensor, teacher: Tensor, teacher_cls: Tensor, inv_tau: float, bin_scale: float
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """``student``, ``teacher`` ``(anchors, 4, bins)`` and ``teacher_cls`` ``(anchors, classes)``, contiguous, on
    one device → (``total``, ``soft_count``: float32 scalars, ``w`` ``(anchors,)`` float32), in one launch."""
    programs = _programs(student.shape[0])
    device = student.device
    partial, count = (torch.empty(programs, dtype=torch.float32, device=device) for _ in range(2))
    weights = torch.empty(student.shape[0], dtype=torch.float32, device=device)
    _launch(student, teacher, teacher_cls, None, weights, partial, count, None, inv_tau, bin_scale)
    return partial.sum(), count.sum(), weights


def box_kl_backward(student: Tensor, teacher: Tensor, teacher_cls: Tensor, weights: Tensor, inv_tau: float,
                    bin_scale: float, factor: Tensor) -> Tensor:
    """The gradient w.r.t. ``student`` (its dtype), ``factor`` a one-element tensor read on the device."""
    grad = torch.empty_like(student)
    _launch(student, teacher, teacher_cls, grad, weights, None, None, factor.reshape(1).float(), inv_tau,
            bin_scale)
    return grad
