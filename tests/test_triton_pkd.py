"""PKD's one-launch Triton kernels (kdloss/ops/triton_pkd.py) against mmrazor's PKDLoss written out plainly
(open-mmlab/mmrazor, mmrazor/models/losses/pkd_loss.py, ``PKDLoss.norm`` and ``forward``), in float32 and
bfloat16, values and gradients: compiled on CUDA, interpreted (TRITON_INTERPRET=1) on the CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kdloss.functional as KF
from kdloss.ops import pkd as ops_pkd
from kdloss.ops import triton_kernels, triton_pkd

pytestmark = pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
# a channel over one block and over several with a ragged end, several images, one image, a tiny level
SHAPES = [(2, 3, 5, 7), (2, 4, 24, 24), (1, 5, 3, 3), (3, 2, 1, 2)]
GRAD_TOLERANCE = {torch.float32: {"rtol": 1e-4, "atol": 1e-7}, torch.bfloat16: {"rtol": 2**-7, "atol": 1e-7}}


def mmrazor_norm(feat):
    """``PKDLoss.norm``: per channel over (N, H, W), unbiased std plus 1e-6."""
    n, c, h, w = feat.shape
    feat = feat.permute(1, 0, 2, 3).reshape(c, -1)
    feat = (feat - feat.mean(dim=-1, keepdim=True)) / (feat.std(dim=-1, keepdim=True) + 1e-6)
    return feat.reshape(c, n, h, w).permute(1, 0, 2, 3)


def mmrazor_pkd(students, teachers):
    """``PKDLoss.forward`` (same sizes, loss_weight 1): ``mse_loss(norm(s), norm(t)) / 2`` per level, summed."""
    return sum(F.mse_loss(mmrazor_norm(s), mmrazor_norm(t)) / 2 for s, t in zip(students, teachers))


def levels(dtype, shapes=SHAPES, seed=0):
    g = torch.Generator().manual_seed(seed)
    # offsets and scales per channel, as real features have: the centring must not lose them
    students = [(torch.randn(shape, generator=g) * 3 + 2).to(dtype).to(DEVICE).requires_grad_(True)
                for shape in shapes]
    teachers = [(torch.randn(shape, generator=g) * 0.5 - 1).to(dtype).to(DEVICE) for shape in shapes]
    return students, teachers


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_launch_matches_mmrazor(dtype):
    students, teachers = levels(dtype)
    value = ops_pkd.pkd_levels_fused(students, teachers)
    (value * 0.3).backward()
    references = [s.detach().double().requires_grad_(True) for s in students]
    expected = mmrazor_pkd(references, [t.double() for t in teachers])
    (expected * 0.3).backward()
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    for s, r in zip(students, references):
        assert s.grad.dtype == dtype
        torch.testing.assert_close(s.grad.double(), r.grad.to(dtype).double(), **GRAD_TOLERANCE[dtype])


def test_the_loss_takes_one_launch_each_way_and_agrees_with_eager(monkeypatch):
    """``KF.pkd(impl="fused")`` with Triton kernels chosen (as on CUDA): one launch each way for all levels, an
    empty level beside them, and the eager path's value and gradients."""
    launches = []
    launch = triton_pkd._launch
    monkeypatch.setattr(triton_pkd, "_launch", lambda *args: launches.append(args[-1] is not None) or launch(*args))
    fits = ops_pkd.pkd_levels_fit
    module = __import__("sys").modules["kdloss.functional.pkd"]
    monkeypatch.setattr(module, "pkd_levels_fit", lambda s, t, kernels="auto": fits(s, t, "triton"))
    students, teachers = levels(torch.float32, SHAPES[:3])
    students.append(torch.empty(0, 2, 4, 4, device=DEVICE, requires_grad=True))
    teachers.append(torch.empty(0, 2, 4, 4, device=DEVICE))
    results = []
    for impl in ("fused", "eager"):
        leaves = [s.detach().clone().requires_grad_(True) for s in students]
        value = KF.pkd(leaves, teachers, impl=impl)
        value.backward()
        results.append((value, [x.grad for x in leaves]))
    assert launches == [False, True]
    (fused, fused_grads), (eager, eager_grads) = results
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-7)
    for a, b in zip(fused_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("near", ["noise", "scaled"])
def test_a_student_near_its_teacher_loses_nothing_to_cancellation(near):
    """A student 1e-3 from its teacher (or a scaled, shifted copy of it: PKD's value 0 up to that noise): the
    loss is the difference of terms about M = N·H·W times larger, so expanding the square would leave float32
    rounding, even a negative value; summed from the standardised difference it keeps float32's precision. The
    gradient is as far from float64 as eager float32's is, within a few times (both lose the noise's digits to
    the centring)."""
    g = torch.Generator().manual_seed(3)
    teacher = torch.randn(4, 4, 32, 32, generator=g) * 3 + 5
    noise = torch.randn(teacher.shape, generator=g) * 1e-3
    student = teacher + noise if near == "noise" else 7 * teacher - 2 + noise
    grads = {}
    for impl in ("fused", "eager"):
        leaf = student.clone().to(DEVICE).requires_grad_(True)
        value = (ops_pkd.pkd_levels_fused([leaf], [teacher.to(DEVICE)]) if impl == "fused"
                 else KF.pkd([leaf], [teacher.to(DEVICE)], impl="eager"))
        value.backward()
        grads[impl] = (value, leaf.grad.double().cpu())
    reference = student.double().requires_grad_(True)
    expected = mmrazor_pkd([reference], [teacher.double()])
    expected.backward()
    value = grads["fused"][0]
    assert value.item() > 0
    torch.testing.assert_close(value.double().cpu(), expected, rtol=1e-4, atol=0)

    def error(grad):
        return ((grad - reference.grad).norm() / reference.grad.norm()).item()

    assert error(grads["fused"][1]) < 5 * error(grads["eager"][1])


def test_more_levels_than_one_launch_takes_and_frozen_levels():
    shapes = [(2, 3, 4, 4)] * 6
    students, teachers = levels(torch.float32, shapes)
    students[1] = students[1].detach()  # a frozen level: no gradient for it
    value = ops_pkd.pkd_levels_fused(students, teachers)
    value.backward()
    expected = mmrazor_pkd([s.detach().double() for s in students], [t.double() for t in teachers])
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    assert students[1].grad is None and all(s.grad is not None for i, s in enumerate(students) if i != 1)


def test_a_constant_channel_has_a_finite_gradient():
    students, teachers = levels(torch.float32, [(2, 3, 4, 4)])
    constant = students[0].detach().clone()
    constant[:, 1] = 0.5
    constant.requires_grad_(True)
    ops_pkd.pkd_levels_fused([constant], teachers).backward()
    assert torch.isfinite(constant.grad).all()


def test_float64_does_not_take_the_kernels():
    students, teachers = levels(torch.float32, SHAPES[:2])
    assert ops_pkd.pkd_levels_fit(students, teachers, "triton")
    assert not ops_pkd.pkd_levels_fit([s.double() for s in students], [t.double() for t in teachers])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist on CUDA only")
def test_no_host_sync_on_cuda():
    students, teachers = levels(torch.float32)
    torch.cuda.set_sync_debug_mode("error")
    try:
        ops_pkd.pkd_levels_fused(students, teachers).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
