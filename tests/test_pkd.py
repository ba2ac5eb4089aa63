"""PKD against mmrazor's PKDLoss written out plainly (mmrazor, mmrazor/models/losses/pkd_loss.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import features

import kdloss.functional as KF
from kdloss import PKD


def mmrazor_norm(feat):
    """``PKDLoss.norm``: per channel over (N, H, W), unbiased std plus 1e-6."""
    n, c, h, w = feat.shape
    feat = feat.permute(1, 0, 2, 3).reshape(c, -1)
    mean = feat.mean(dim=-1, keepdim=True)
    std = feat.std(dim=-1, keepdim=True)
    feat = (feat - mean) / (std + 1e-6)
    return feat.reshape(c, n, h, w).permute(1, 0, 2, 3)


def mmrazor_pkd(preds_s, preds_t, loss_weight=1.0, resize_stu=True):
    """``PKDLoss.forward``: resize, normalise both, ``mse_loss / 2`` per level, summed, times loss_weight."""
    loss = 0.0
    for pred_s, pred_t in zip(preds_s, preds_t):
        if pred_s.shape[2:] != pred_t.shape[2:]:
            pred_s = F.interpolate(pred_s, tuple(pred_t.shape[2:]), mode="bilinear") if resize_stu else pred_s
        loss += F.mse_loss(mmrazor_norm(pred_s), mmrazor_norm(pred_t)) / 2
    return loss * loss_weight


SHAPES = [(2, 8, 8, 8), (2, 16, 4, 4)]


@pytest.mark.parametrize("impl", ["eager", "fused", "compile"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pkd_equals_mmrazor_values_and_gradients(impl, dtype):
    s = [x * 3 + 1 for x in features(SHAPES, dtype=dtype, seed=1)]
    s = [x.detach().requires_grad_(True) for x in s]
    t = features(SHAPES, dtype=dtype, seed=2)
    value = PKD(loss_weight=2.0, impl=impl)(s, t)
    value.backward()
    ref_s = [x.detach().clone().requires_grad_(True) for x in s]
    expected = mmrazor_pkd(ref_s, t, loss_weight=2.0)
    expected.backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert value.dtype == dtype
    torch.testing.assert_close(value, expected, **tol)
    for got, ref in zip(s, ref_s):
        torch.testing.assert_close(got.grad, ref.grad, **tol)


def test_pkd_resizes_the_student_like_mmrazor():
    s = features([(2, 4, 8, 8)], dtype=torch.float64, seed=3, requires_grad=True)
    t = features([(2, 4, 4, 4)], dtype=torch.float64, seed=4)
    value = KF.pkd(s, t)
    torch.testing.assert_close(value, mmrazor_pkd(s, t))
    value.backward()
    assert s[0].grad.shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"PKD: student and teacher spatial sizes differ at level 0: \(8, 8\) vs"):
        KF.pkd(s, t, resize_student=False)


def test_pkd_gradcheck_float64():
    s = features([(2, 3, 3, 3), (2, 2, 2, 2)], dtype=torch.float64, seed=5, requires_grad=True)
    t = features([(2, 3, 3, 3), (2, 2, 2, 2)], dtype=torch.float64, seed=6)
    assert torch.autograd.gradcheck(lambda a, b: KF.pkd([a, b], t, impl="eager"), tuple(s))


def test_pkd_ignores_scale_and_offset_and_is_one_minus_pearson():
    s = features([(2, 4, 6, 6)], dtype=torch.float64, seed=7)[0]
    t = features([(2, 4, 6, 6)], dtype=torch.float64, seed=8)[0]
    base = KF.pkd(s, t)
    torch.testing.assert_close(KF.pkd(s * 50 - 3, t * 10 + 7), base, rtol=1e-5, atol=1e-9)  # up to the eps 1e-6
    assert KF.pkd(s, s * 4 + 2).item() == pytest.approx(0.0, abs=1e-9)
    k = s.shape[0] * s.shape[2] * s.shape[3]  # 1 − r per channel, up to the 1e-6 and the (K − 1)/K of the std
    flat_s, flat_t = s.transpose(0, 1).reshape(4, -1), t.transpose(0, 1).reshape(4, -1)
    r = torch.stack([torch.corrcoef(torch.stack((a, b)))[0, 1] for a, b in zip(flat_s, flat_t)])
    assert base.item() == pytest.approx(((k - 1) / k * (1 - r)).mean().item(), rel=1e-5)


def test_pkd_align_convs_and_errors():
    s = features([(2, 4, 4, 4)], seed=9, requires_grad=True)
    t = features([(2, 8, 4, 4)], seed=10)
    loss = PKD(student_channels=4, teacher_channels=8)
    loss(s, t).backward()
    assert loss.align.convs[0].weight.grad is not None
    with pytest.raises(ValueError, match="PKD: student and teacher channels differ at level 0: 4 vs 8"):
        PKD()(s, t)
    with pytest.raises(ValueError, match=r"PKD: level 0 has one value per channel \(shape \(1, 4, 1, 1\)\)"):
        PKD()(features([(1, 4, 1, 1)], seed=1), features([(1, 4, 1, 1)], seed=2))


@pytest.mark.parametrize("impl", ["eager", "fused"])
def test_pkd_empty_batch(impl):
    s = torch.zeros(0, 3, 4, 4, requires_grad=True)
    value = PKD(impl=impl)(s, torch.zeros(0, 3, 4, 4))
    assert value.item() == 0.0
    value.backward()
    assert s.grad is not None
