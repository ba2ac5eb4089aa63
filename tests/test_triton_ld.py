"""LD's one-launch Triton kernels (kdloss/ops/triton_ld.py) against the official per-distribution loss written out
plainly (HikariTJU/LD, mmdet ``models/losses/kd_loss.py``, ``knowledge_distillation_kl_div_loss``) with kdloss's
weights, in float32 and bfloat16, values and gradients: compiled on CUDA, interpreted (TRITON_INTERPRET=1) on the
CPU."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, detection_pair

import kdloss.functional as KF
from kdloss import DetectionOutput
from kdloss.ops import ld as ops_ld
from kdloss.ops import triton_kernels, triton_ld

pytestmark = pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
# bfloat16 inputs are read into float32 by both sides; the gradient is rounded once to bfloat16, towards zero by
# the interpreter and to nearest on the GPU: one bfloat16 step apart at most.
GRAD_TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-8}, torch.bfloat16: {"rtol": 2**-7, "atol": 1e-10}}


def official_ld_sums(s_box, t_box, t_cls, T):
    """``knowledge_distillation_kl_div_loss`` per distribution (kl_div of the softened distributions, mean over
    the bins, × T²), then kdloss's weights ``max_c σ(teacher cls)`` and ¼ over the sides, in float64."""
    b, a, _, bins = s_box.shape
    s, t = s_box.double().reshape(-1, bins), t_box.double().reshape(-1, bins)
    target = F.softmax(t / T, dim=1)
    per_side = F.kl_div(F.log_softmax(s / T, dim=1), target, reduction="none").mean(1) * (T * T)
    weights = torch.sigmoid(t_cls.double()).amax(-1)
    return (weights * per_side.reshape(b, a, 4).sum(-1)).sum() / 4, weights.sum()


def pair(dtype, anchors_per_level=((5, 7), (3, 3)), nc=5, reg_max=16, seed=0):
    s, t = detection_pair(batch=2, sizes=anchors_per_level, strides=(8, 16), nc=nc, reg_max=reg_max,
                          dtype=torch.float32, seed=seed)
    box = s.box.detach().to(dtype).to(DEVICE).requires_grad_(True)
    return box, t.box.to(dtype).to(DEVICE), t.cls.to(dtype).to(DEVICE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("nc, reg_max", [(5, 16), (200, 7)], ids=["nc5-bins16", "nc200-bins7"])
def test_one_launch_matches_the_official_formula(dtype, nc, reg_max):
    """nc 200: the class max loops over two blocks; 7 bins: padded to 8 lanes."""
    box, t_box, t_cls = pair(dtype, nc=nc, reg_max=reg_max)
    total, count = ops_ld.ld_box_kl(box, t_box, t_cls, 10.0)
    (total * 0.7).backward()
    reference = box.detach().double().requires_grad_(True)
    expected, expected_count = official_ld_sums(reference, t_box, t_cls, 10.0)
    (expected * 0.7).backward()
    assert total.dtype == torch.float32 and box.grad.dtype == dtype
    torch.testing.assert_close(total.double(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(count.double(), expected_count, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(box.grad.double(), reference.grad.to(dtype).double(), **GRAD_TOLERANCE[dtype])


def test_the_loss_takes_one_launch_each_way_and_agrees_with_eager(monkeypatch):
    """``LD(impl="fused")`` with Triton kernels chosen (as on CUDA) equals ``impl="eager"``."""
    launches = []
    launch = triton_ld._launch
    monkeypatch.setattr(triton_ld, "_launch", lambda *args: launches.append(args[-3] is not None) or launch(*args))
    fits = ops_ld.box_kl_fits
    module = importlib.import_module("kdloss.functional.ld")  # the package's ``ld`` is the function
    monkeypatch.setattr(module, "box_kl_fits", lambda s, t, c, kernels: fits(s, t, c, "triton"))
    s, t = detection_pair(batch=2, sizes=((6, 6), (3, 3)), strides=(8, 16), nc=4, reg_max=16, dtype=torch.float32)
    results = []
    for impl in ("fused", "eager"):
        box = s.box.detach().clone().requires_grad_(True)
        student = DetectionOutput(s.cls.detach(), box, s.anchors, s.strides)
        value = KF.ld(student, t, temperature=10.0, avg_factor=None, impl=impl)
        value.backward()
        results.append((value, box.grad))
    assert launches == [False, True]  # one forward launch, one backward launch
    (fused, fused_grad), (eager, eager_grad) = results
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fused_grad, eager_grad, rtol=1e-5, atol=1e-8)


def test_non_contiguous_frozen_and_extreme_logits():
    box, t_box, t_cls = pair(torch.float32)
    wide = torch.cat([box.detach(), box.detach()], dim=-1)[..., ::2]  # a non-contiguous view, equal values
    assert not wide.is_contiguous()
    total, _ = ops_ld.ld_box_kl(wide, t_box, t_cls, 1.0)
    torch.testing.assert_close(total.double(), official_ld_sums(wide, t_box, t_cls, 1.0)[0], rtol=1e-5, atol=1e-7)
    assert not total.requires_grad  # a frozen student: nothing to differentiate
    huge = (box.detach() * 1e4).requires_grad_(True)  # softmax of very large logits: no inf or NaN
    value, _ = ops_ld.ld_box_kl(huge, t_box * 1e4, t_cls, 1.0)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(huge.grad).all()
    expected = official_ld_sums(huge.detach(), t_box * 1e4, t_cls, 1.0)[0]
    torch.testing.assert_close(value.double(), expected, rtol=1e-4, atol=1e-2)


def test_float64_and_another_device_do_not_take_the_kernels():
    box, t_box, t_cls = pair(torch.float32)
    assert ops_ld.box_kl_fits(box, t_box, t_cls, "triton")
    assert not ops_ld.box_kl_fits(box.double(), t_box.double(), t_cls.double(), "auto")
    assert not ops_ld.box_kl_fits(box, t_box, t_cls[..., :0], "triton")
    with pytest.raises(ValueError, match="float64"):
        ops_ld.box_kl_fits(box.double(), t_box.double(), t_cls.double(), "triton")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist on CUDA only")
def test_no_host_sync_on_cuda():
    box, t_box, t_cls = pair(torch.float32)
    torch.cuda.set_sync_debug_mode("error")
    try:
        ops_ld.ld_box_kl(box, t_box, t_cls, 10.0)[0].backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_crosskd_fused_takes_the_class_and_kl_kernels_and_agrees_with_eager(monkeypatch):
    """CrossKD's fused path on CUDA: BCKD's class kernel and LD's KL kernel (one launch each way each) and the
    compiled GIoU Function, equal to ``impl="eager"`` (itself tested against the official code in
    tests/test_crosskd.py) in both terms' values and in the crossed predictions' gradients."""
    from kdloss.ops import triton_kernels as bckd_kernels

    launches = []
    launch = triton_ld._launch
    monkeypatch.setattr(triton_ld, "_launch", lambda *args: launches.append("kl") or launch(*args))
    forward = bckd_kernels.bckd_cls_forward
    monkeypatch.setattr(bckd_kernels, "bckd_cls_forward", lambda *args: launches.append("cls") or forward(*args))
    fits = ops_ld.box_kl_fits
    module = importlib.import_module("kdloss.functional.crosskd")
    monkeypatch.setattr(module, "box_kl_fits", lambda s, t, c, kernels: fits(s, t, c, "triton"))
    s, t = detection_pair(batch=2, sizes=((5, 5), (3, 3)), strides=(8, 16), nc=4, reg_max=16, dtype=torch.float32)
    results = []
    for impl in ("fused", "eager"):
        cls, box = s.cls.detach().clone().requires_grad_(True), s.box.detach().clone().requires_grad_(True)
        parts = KF.crosskd_parts(DetectionOutput(cls, box, s.anchors, s.strides), t, temperature=2.0,
                                 avg_factor=3.0, impl=impl)
        (parts.cls + 0.5 * parts.box).backward()
        results.append(([parts.cls, parts.box], [cls.grad, box.grad]))
    assert launches == ["cls", "kl", "kl"]  # class forward (its backward is another kernel), KL forward, backward
    (fused, fused_grads), (eager, eager_grads) = results
    for a, b in zip(fused + fused_grads, eager + eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_crosskd_fused_leaves_float64_crossed_classes_to_the_compiled_build(monkeypatch):
    """A float64 ``crossed.cls`` beside float32 boxes (the pair's check does not tie their dtypes): the class
    kernel computes in float32, so the fused path runs the compiled build instead of raising."""
    fits = ops_ld.box_kl_fits
    module = importlib.import_module("kdloss.functional.crosskd")
    monkeypatch.setattr(module, "box_kl_fits", lambda s, t, c, kernels: fits(s, t, c, "triton"))
    s, t = detection_pair(batch=1, sizes=((3, 3),), strides=(8,), nc=3, reg_max=16, dtype=torch.float32)
    crossed = DetectionOutput(s.cls.double(), s.box, s.anchors, s.strides)
    fused = KF.crosskd_parts(crossed, t, avg_factor=2.0, impl="fused")
    eager = KF.crosskd_parts(crossed, t, avg_factor=2.0, impl="eager")
    torch.testing.assert_close(fused.cls, eager.cls, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fused.box, eager.box, rtol=1e-5, atol=1e-7)
