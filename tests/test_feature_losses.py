"""CWD, Mimic and MGD against their papers' formulas written out plainly, plus gradients and levels."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import features

import kdloss.functional as KF
from kdloss import CWD, MGD, Mimic

SHAPES = [[(2, 3, 4, 5)], [(2, 4, 8, 8), (2, 6, 4, 4), (2, 8, 2, 2)]]


def cwd_reference(student, teacher, tau):
    """tau² / (N·C) · Σ_{n,c} KL(softmax(t[n,c]/tau) ‖ softmax(s[n,c]/tau)), one channel at a time."""
    total = 0.0
    for s, t in zip(student, teacher):
        n, c = s.shape[:2]
        level = 0.0
        for i in range(n):
            for j in range(c):
                es = torch.exp(s[i, j].flatten().double() / tau)
                et = torch.exp(t[i, j].flatten().double() / tau)
                p_s, p_t = es / es.sum(), et / et.sum()
                level = level + (p_t * (torch.log(p_t) - torch.log(p_s))).sum()
        total = total + level * tau**2 / (n * c)
    return total


def mimic_reference(student, teacher):
    return sum(((s.double() - t.double()) ** 2).sum() / s.numel() for s, t in zip(student, teacher))


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("tau", [1.0, 2.0, 0.5])
def test_cwd_matches_formula(shapes, tau):
    s, t = features(shapes, seed=1), features(shapes, seed=2)
    expected = cwd_reference(s, t, tau)
    got = CWD(tau=tau)(s, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_cwd_is_zero_for_identical_maps_and_positive_otherwise():
    s = features([(2, 3, 4, 4)], seed=3)
    assert CWD()(s, s).abs().item() < 1e-6
    assert CWD()(s, features([(2, 3, 4, 4)], seed=4)).item() > 0


@pytest.mark.parametrize("shapes", SHAPES)
def test_mimic_matches_formula(shapes):
    s, t = features(shapes, seed=1), features(shapes, seed=2)
    torch.testing.assert_close(Mimic()(s, t).double(), mimic_reference(s, t), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", [CWD(tau=2.0), Mimic()])
def test_levels_sum_and_loss_weight(loss):
    s, t = features(SHAPES[1], seed=5), features(SHAPES[1], seed=6)
    per_level = sum(loss(si, ti) for si, ti in zip(s, t))
    torch.testing.assert_close(loss(s, t), per_level)
    loss.loss_weight = 3.0
    torch.testing.assert_close(loss(s, t), 3.0 * per_level)
    loss.loss_weight = 1.0


def test_teacher_gets_no_gradient():
    s = features(SHAPES[1], seed=1, requires_grad=True)
    t = features(SHAPES[1], seed=2, requires_grad=True)
    (CWD()(s, t) + Mimic()(s, t)).backward()
    assert all(x.grad is not None for x in s)
    assert all(x.grad is None for x in t)


@pytest.mark.parametrize("fn", [lambda s, t: KF.cwd(s, t, tau=1.5), KF.mimic])
def test_gradcheck_float64(fn):
    s = features([(2, 3, 3, 4)], dtype=torch.float64, seed=1, requires_grad=True)[0]
    t = features([(2, 3, 3, 4)], dtype=torch.float64, seed=2)[0]
    assert torch.autograd.gradcheck(lambda x: fn(x, t), (s,))


def test_cwd_gradient_formula():
    """dL/ds = tau/(N·C) · (softmax(s/tau) − softmax(t/tau)), channel by channel."""
    tau = 2.0
    s = features([(2, 3, 4, 4)], dtype=torch.float64, seed=1, requires_grad=True)[0]
    t = features([(2, 3, 4, 4)], dtype=torch.float64, seed=2)[0]
    KF.cwd(s, t, tau).backward()
    p_s = torch.softmax(s.detach().flatten(2) / tau, -1)
    p_t = torch.softmax(t.flatten(2) / tau, -1)
    expected = (tau / (2 * 3)) * (p_s - p_t)
    torch.testing.assert_close(s.grad.flatten(2), expected)


@pytest.mark.parametrize("cls", [CWD, Mimic])
def test_align_convs_map_channels_and_learn(cls):
    s = features([(2, 4, 8, 8), (2, 6, 4, 4)], seed=1)
    t = features([(2, 8, 8, 8), (2, 6, 4, 4)], seed=2)
    loss = cls(student_channels=[4, 6], teacher_channels=[8, 6])
    assert isinstance(loss.align.convs[0], torch.nn.Conv2d) and isinstance(loss.align.convs[1], torch.nn.Identity)
    value = loss(s, t)
    fn = KF.cwd if cls is CWD else KF.mimic
    torch.testing.assert_close(value, fn([loss.align.convs[0](s[0]), s[1]], t))
    value.backward()
    conv = loss.align.convs[0]
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.bias.grad is not None


def test_no_align_when_channels_equal():
    assert CWD(student_channels=[8, 8], teacher_channels=8).align is None


def mgd_reference(student, teacher, loss, seed, alpha, lam):
    """alpha · Σ (G(align(s)·M) − t)² / N with M = 0 with probability lambda, drawn as the test sees fit."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for level, (s, t) in enumerate(zip(student, teacher)):
        n, _, h, w = s.shape
        keep = (torch.rand((n, 1, h, w), generator=g) >= lam).float()
        aligned = loss.align.convs[level](s)
        generated = loss.generation[level](aligned * keep)
        total = total + alpha * ((generated - t) ** 2).sum() / n
    return total


@pytest.mark.parametrize("lam", [0.0, 0.65])
def test_mgd_matches_formula(lam):
    s = features([(2, 4, 8, 8), (2, 8, 4, 4)], seed=1)
    t = features([(2, 8, 8, 8), (2, 8, 4, 4)], seed=2)
    loss = MGD([4, 8], [8, 8], alpha_mgd=2e-5, lambda_mgd=lam)
    # as yzd-v/MGD's FeatureLoss: an align conv only where the channel counts differ
    assert isinstance(loss.align.convs[0], torch.nn.Conv2d) and isinstance(loss.align.convs[1], torch.nn.Identity)
    got = loss(s, t, generator=torch.Generator().manual_seed(7))
    expected = mgd_reference(s, t, loss, 7, 2e-5, lam)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-9)


def test_mgd_lambda_zero_means_no_mask():
    s = features([(2, 8, 4, 4)], seed=1)[0]
    t = features([(2, 8, 4, 4)], seed=2)[0]
    loss = MGD(8, 8, lambda_mgd=0.0)
    unmasked = 2e-5 * ((loss.generation[0](s) - t) ** 2).sum() / 2
    torch.testing.assert_close(loss(s, t), unmasked)


def test_mgd_generator_makes_masks_reproducible():
    s = features([(2, 8, 16, 16)], seed=1)[0]
    t = features([(2, 8, 16, 16)], seed=2)[0]
    loss = MGD(8, 8)
    a = loss(s, t, generator=torch.Generator().manual_seed(3))
    b = loss(s, t, generator=torch.Generator().manual_seed(3))
    c = loss(s, t, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mgd_mask_drops_lambda_fraction():
    x = torch.zeros(64, 3, 32, 32)
    mask = KF.mgd_mask(x, 0.65, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs((mask == 0).float().mean().item() - 0.65) < 0.01


def test_mgd_trains_align_and_generation():
    s = features([(2, 4, 8, 8)], seed=1, requires_grad=True)[0]
    t = features([(2, 8, 8, 8)], seed=2)[0]
    loss = MGD(4, 8)
    loss(s, t, generator=torch.Generator().manual_seed(0)).backward()
    for p in loss.parameters():
        assert p.grad is not None
    assert s.grad is not None


def test_mgd_gradcheck_float64():
    s = features([(2, 3, 4, 4)], dtype=torch.float64, seed=1, requires_grad=True)[0]
    t = features([(2, 3, 4, 4)], dtype=torch.float64, seed=2)[0]
    net = torch.nn.Conv2d(3, 3, 3, padding=1).double()

    def fn(x):
        return KF.mgd(x, t, net, alpha_mgd=1e-2, lambda_mgd=0.5, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fn, (s,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("make", [lambda: CWD(tau=1.0), lambda: Mimic()])
def test_low_precision_inputs_compute_in_float32(dtype, make):
    s = features(SHAPES[1], seed=1)
    t = features(SHAPES[1], seed=2)
    loss = make()
    low = loss([x.to(dtype) for x in s], [x.to(dtype) for x in t])
    assert low.dtype == torch.float32
    # bf16 keeps ~3 significant digits of each input: the loss must agree to that order.
    rtol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(low, loss(s, t), rtol=rtol, atol=1e-4)
    # The exact same numbers in float32 give the same loss: the computation itself is float32.
    torch.testing.assert_close(low, loss([x.to(dtype).float() for x in s], [x.to(dtype).float() for x in t]))


def test_autocast_with_align_and_mgd():
    s = features([(2, 4, 8, 8)], seed=1, requires_grad=True)[0]
    t = features([(2, 8, 8, 8)], seed=2)[0]
    cwd, mgd = CWD(student_channels=4, teacher_channels=8), MGD(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = cwd(s, t.bfloat16()) + mgd(s, t.bfloat16(), generator=torch.Generator().manual_seed(0))
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    assert cwd.align.convs[0].weight.grad is not None and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("make", [lambda: CWD(), lambda: Mimic(), lambda: MGD(3, 3)])
def test_empty_batch_is_zero_and_backpropagates(make):
    s = torch.zeros(0, 3, 4, 4, requires_grad=True)
    t = torch.zeros(0, 3, 4, 4)
    value = make()(s, t)
    assert value.item() == 0.0 and not math.isnan(value.item())
    value.backward()
    assert s.grad is not None and s.grad.shape == s.shape


def test_tau_must_be_positive():
    with pytest.raises(ValueError, match=r"CWD: tau must be > 0"):
        CWD(tau=0.0)
