"""LD against the official per-distribution loss written out plainly (HikariTJU/LD, mmdet
``models/losses/kd_loss.py``, ``knowledge_distillation_kl_div_loss``), with kdloss's documented weighting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import detection_pair

import kdloss.functional as KF
from kdloss import LD, DetectionOutput


def official_kl_div_loss(pred, soft_label, T):
    """``knowledge_distillation_kl_div_loss``: kl_div of the softened distributions, mean over bins, × T²."""
    target = F.softmax(soft_label / T, dim=1).detach()
    return F.kl_div(F.log_softmax(pred / T, dim=1), target, reduction="none").mean(1) * (T * T)


def reference_ld(s, t, T, avg_factor):
    b, a, _, reg_max = s.box.shape
    per_side = official_kl_div_loss(s.box.reshape(-1, reg_max), t.box.reshape(-1, reg_max), T).reshape(b, a, 4)
    weights = torch.sigmoid(t.cls.detach()).amax(-1)
    return (weights * per_side.sum(-1)).sum() / 4 / avg_factor


@pytest.mark.parametrize("impl", ["eager", "fused", "compile"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ld_equals_the_official_term_with_teacher_weights(impl, dtype):
    s, t = detection_pair(dtype=dtype, seed=2, reg_max=16)
    value = LD(temperature=10.0, loss_weight=0.5, impl=impl)(s, t, avg_factor=3.0)
    value.backward()
    ref_box = s.box.detach().clone().requires_grad_(True)
    expected = 0.5 * reference_ld(DetectionOutput(s.cls, ref_box, s.anchors, s.strides), t, 10.0, 3.0)
    expected.backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-7}
    assert value.dtype == dtype
    torch.testing.assert_close(value, expected, **tol)
    torch.testing.assert_close(s.box.grad, ref_box.grad, **tol)
    assert s.cls.grad is None or s.cls.grad.abs().sum() == 0  # the weights are the teacher's


def test_ld_gradcheck_and_default_normaliser():
    s, t = detection_pair(batch=1, sizes=((2, 2),), nc=3, reg_max=5, seed=3)
    assert torch.autograd.gradcheck(
        lambda box: KF.ld(DetectionOutput(s.cls, box, s.anchors, s.strides), t, temperature=2.0, impl="eager"),
        (s.box,))
    soft_count = torch.sigmoid(t.cls).amax(-1).sum().clamp(min=1)
    torch.testing.assert_close(KF.ld(s, t, temperature=2.0), KF.ld(s, t, temperature=2.0, avg_factor=soft_count))


def test_ld_zero_for_identical_distributions_and_errors():
    s, t = detection_pair(seed=4)
    same = DetectionOutput(t.cls, s.box.detach(), s.anchors, s.strides)
    assert KF.ld(s, same).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"LD: the heads predict one value per box side \(reg_max=1"):
        KF.ld(*detection_pair(reg_max=1))
    with pytest.raises(ValueError, match="LD: temperature must be > 0"):
        LD(temperature=0)
    with pytest.raises(ValueError, match="LD: student and teacher box shapes differ"):
        KF.ld(detection_pair(reg_max=8)[0], detection_pair(reg_max=6)[1])


@pytest.mark.parametrize("impl", ["eager", "fused"])
def test_ld_empty_batch(impl):
    s, t = detection_pair(batch=0)
    value = LD(impl=impl)(s, t)
    assert value.item() == 0.0
    value.backward()
    assert s.box.grad is not None
