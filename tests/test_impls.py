"""eager, fused and compile give the same numbers; the fused Functions' kernels (torch, inductor-compiled,
Triton) agree with their references; float64 gradchecks for every custom backward."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, detection_pair, features

import kdloss.functional as KF
from kdloss import BCKD, CWD, L1, L2, MGD, DetectionOutput, Mimic
from kdloss.detection import generalized_iou
from kdloss.ops import triton_kernels
from kdloss.ops.bckd import (
    BCKDBoxFunction,
    BCKDClassFunction,
    _sigmoid_softplus_and_slope,
    bckd_cls_backward,
    bckd_cls_forward,
    giou_and_grad,
)
from kdloss.ops.cwd import CWDRowsFunction, cwd_rows_forward, cwd_rows_value_and_grad
from kdloss.ops.errors import ErrorLevelsFunction

IMPLS = ["fused", "compile"]
SHAPES = [(2, 8, 8, 8), (2, 16, 4, 4)]
# per dtype: inputs are rounded to the dtype once; the maths is float32 in every impl
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.bfloat16: {"rtol": 1e-4, "atol": 1e-5},
             torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def run_feature(make, impl, dtype, seed=0):
    s = [x.requires_grad_(True) for x in features(SHAPES, dtype=dtype, seed=seed + 1)]
    t = features(SHAPES, dtype=dtype, seed=seed + 2)
    torch.manual_seed(0)
    loss = make(impl).to(torch.float64 if dtype == torch.float64 else torch.float32)
    value = loss(s, t, generator=torch.Generator().manual_seed(3)) if isinstance(loss, MGD) else loss(s, t)
    value.backward()
    return value.detach(), [x.grad for x in s]


FEATURE_LOSSES = {
    "cwd": lambda impl: CWD(tau=2.0, impl=impl),
    "mimic": lambda impl: Mimic(impl=impl),
    "mgd": lambda impl: MGD([8, 16], [8, 16], impl=impl),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(FEATURE_LOSSES))
def test_feature_impls_match_eager(name, impl, dtype):
    ref_value, ref_grads = run_feature(FEATURE_LOSSES[name], "eager", dtype)
    value, grads = run_feature(FEATURE_LOSSES[name], impl, dtype)
    assert value.dtype == ref_value.dtype
    torch.testing.assert_close(value, ref_value, **TOLERANCE[dtype])
    for got, expected in zip(grads, ref_grads):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), expected.float(), **TOLERANCE[dtype])


LOGIT_LOSSES = {"l1": L1, "l2": L2, "bckd": BCKD}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(LOGIT_LOSSES))
def test_logit_impls_match_eager(name, impl, dtype):
    def run(which):
        s, t = detection_pair(dtype=dtype, seed=4)
        parts = LOGIT_LOSSES[name](impl=which).parts(s, t)
        sum(parts.values()).backward()
        return {k: v.detach() for k, v in parts.items()}, s.cls.grad, s.box.grad

    ref_parts, ref_cls, ref_box = run("eager")
    parts, cls_grad, box_grad = run(impl)
    for key in ref_parts:
        torch.testing.assert_close(parts[key], ref_parts[key], **TOLERANCE[dtype])
    torch.testing.assert_close(cls_grad.float(), ref_cls.float(), **TOLERANCE[dtype])
    torch.testing.assert_close(box_grad.float(), ref_box.float(), **TOLERANCE[dtype])


def test_auto_is_fused_and_bad_impl_is_an_error():
    assert CWD().impl == "auto"
    s, t = features([(2, 3, 4, 4)], seed=1, requires_grad=True), features([(2, 3, 4, 4)], seed=2)
    node = CWD(impl="auto")(s, t).grad_fn
    while node is not None and type(node).__name__ != "CWDRowsFunctionBackward":
        node = node.next_functions[0][0]
    assert node is not None  # auto ran the fused Function
    with pytest.raises(ValueError, match=r"CWD: impl must be one of \('auto', 'eager', 'fused', 'compile'\)"):
        CWD(impl="triton")
    with pytest.raises(ValueError, match="BCKD: impl must be one of"):
        KF.bckd_parts(*detection_pair(), impl="fast")


KERNELS = ["torch", "compiled"] + (["triton"] if triton_kernels.AVAILABLE else [])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize(("rows", "length"), [(6, 37), (4, 2500)])  # 2500 > one Triton block: online lse
def test_cwd_kernels_match_reference(kernels, rows, length):
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(rows, length, generator=g) * 3).to(DEVICE).requires_grad_(True)
    t = (torch.randn(rows, length, generator=g) * 3).to(DEVICE)
    value = CWDRowsFunction.apply(s, t, 1.5, kernels)
    value.backward()
    reference = s.detach().clone().requires_grad_(True)
    log_p_t, log_p_s = torch.log_softmax(t / 1.5, 1), torch.log_softmax(reference / 1.5, 1)
    expected = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
    expected.backward()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.grad, reference.grad, rtol=1e-5, atol=1e-7)


def official_novel_kd_loss(pred, soft_label, beta):
    """TinyTigerPan/BCKD, mmdet/models/losses/kd_loss.py, ``novel_kd_loss`` written out plainly: the target
    is detached, the student's ``score = pred.sigmoid()`` is not, so autograd differentiates the weight."""
    target = soft_label.sigmoid().detach()
    score = pred.sigmoid()
    scale_factor = target - score
    loss = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return (loss * scale_factor.abs().pow(beta)).sum(dim=1)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_bckd_class_kernels_match_official(kernels, beta):
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(30, 7, generator=g) * 3).to(DEVICE).requires_grad_(True)
    t = (torch.randn(30, 7, generator=g) * 3).to(DEVICE)
    total, gap_max, pt_max = BCKDClassFunction.apply(s, t, beta, kernels)
    total.backward()
    reference = s.detach().clone().requires_grad_(True)
    expected = official_novel_kd_loss(reference, t, beta).sum()
    expected.backward()
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.grad, reference.grad, rtol=1e-5, atol=1e-7)
    p_t, p_s = torch.sigmoid(t), torch.sigmoid(s.detach())
    torch.testing.assert_close(gap_max, (p_t - p_s).abs().amax(1))
    torch.testing.assert_close(pt_max, p_t.amax(1))


@pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_bckd_triton_backward_matches_its_torch_twin(beta):
    g = torch.Generator().manual_seed(1)
    s = (torch.randn(40, 80, generator=g) * 4).to(DEVICE)
    t = (torch.randn(40, 80, generator=g) * 4).to(DEVICE)
    factor = torch.tensor(0.7, device=DEVICE)
    # beta < 1: |d|^(beta − 1) amplifies the float32 rounding of p_s − p_t where it is tiny
    tolerance = {"rtol": 1e-5, "atol": 1e-7} if beta >= 1 else {"rtol": 1e-3, "atol": 1e-6}
    torch.testing.assert_close(triton_kernels.bckd_cls_backward(s, t, beta, factor),
                               bckd_cls_backward(s, t, beta, factor), **tolerance)


def _box_pairs():
    """Random xyxy boxes plus the kinks: identical boxes, shared edges, disjoint, nested, zero width."""
    g = torch.Generator().manual_seed(0)
    lo = torch.rand(40, 2, generator=g, dtype=torch.float64) * 10
    b1 = torch.cat((lo, lo + torch.rand(40, 2, generator=g, dtype=torch.float64) * 8), -1)
    lo = torch.rand(40, 2, generator=g, dtype=torch.float64) * 10
    b2 = torch.cat((lo, lo + torch.rand(40, 2, generator=g, dtype=torch.float64) * 8), -1)
    b2[:4] = b1[:4]  # identical
    b2[4:8, 0] = b1[4:8, 0]  # shared left edge
    b2[8:12, :2] = b1[8:12, 2:]  # touching corners: zero-size intersection
    b2[12:16] = b1[12:16] + torch.tensor([20.0, 20.0, 20.0, 20.0], dtype=torch.float64)  # disjoint
    b2[16:20] = b1[16:20] + torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=torch.float64)  # nested
    b1[20:24, 2] = b1[20:24, 0]  # zero width
    return b1, b2


def _clamp_stops_gradient_at_zero() -> bool:
    """torch 2.14 (the pinned version) gives ``clamp(min=0)`` a zero gradient at exactly 0; torch 2.11 gives 1
    (seen on the GPU machine, docs/performance.md "On a GPU")."""
    x = torch.zeros(1, requires_grad=True)
    x.clamp(min=0).sum().backward()
    return x.grad.item() == 0.0


def test_giou_gradient_by_hand_matches_autograd_at_kinks_too():
    b1, b2 = _box_pairs()
    b1.requires_grad_(True)
    expected = generalized_iou(b1, b2)
    expected.sum().backward()
    value, grad = giou_and_grad(b1.detach(), b2)
    torch.testing.assert_close(value, expected.detach())
    rows = torch.ones(len(b1), dtype=torch.bool)
    if not _clamp_stops_gradient_at_zero():  # a torch whose clamp lets the gradient through at 0: there the
        rows[20:24] = False                  # zero-width boxes follow another convention (rows 20-23 alone)
    torch.testing.assert_close(grad[rows], b1.grad[rows])


@pytest.mark.parametrize("reg_max", [16, 1])
def test_gradcheck_bckd_box_function_float64(reg_max):
    s, t = detection_pair(sizes=((2, 2),), strides=(8,), reg_max=reg_max, batch=1)
    weights = torch.rand(1, s.cls.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for kernels in ("torch", "compiled"):
        assert torch.autograd.gradcheck(
            lambda x, k=kernels: BCKDBoxFunction.apply(x, t.box, s.anchors, s.strides, weights, k), (s.box,))


def test_bckd_box_function_without_grad_gives_the_same_value():
    s, t = detection_pair()
    weights = torch.rand(s.cls.shape[:2], dtype=torch.float64)
    plain = BCKDBoxFunction.apply(s.box.detach(), t.box, s.anchors, s.strides, weights, "compiled")
    with_grad = BCKDBoxFunction.apply(s.box, t.box, s.anchors, s.strides, weights, "compiled")
    assert plain.grad_fn is None
    torch.testing.assert_close(plain, with_grad.detach())


def test_bckd_box_function_backward_twice_with_retain_graph():
    s, t = detection_pair()
    weights = torch.rand(s.cls.shape[:2], dtype=torch.float64)
    value = BCKDBoxFunction.apply(s.box, t.box, s.anchors, s.strides, weights, "compiled")
    (value * 2.0).backward(retain_graph=True)
    first = s.box.grad.clone()
    (value * 2.0).backward()
    torch.testing.assert_close(s.box.grad, 2 * first)


def test_gradcheck_cwd_function_float64():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 9, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(4, 9, dtype=torch.float64, generator=g)
    for kernels in ("torch", "compiled"):
        assert torch.autograd.gradcheck(lambda x, k=kernels: CWDRowsFunction.apply(x, t, 0.7, k), (s,))


@pytest.mark.parametrize("power", [1, 2])
def test_gradcheck_error_sum_function_float64(power):
    """Two levels with their own scales, both students differentiated."""
    g = torch.Generator().manual_seed(0)
    t, u = torch.randn(3, 5, dtype=torch.float64, generator=g), torch.randn(7, dtype=torch.float64, generator=g)
    s = (t + torch.rand(3, 5, dtype=torch.float64, generator=g) + 0.1).requires_grad_(True)  # away from |x| kink
    r = (u - torch.rand(7, dtype=torch.float64, generator=g) - 0.1).requires_grad_(True)
    for kernels in ("torch", "compiled"):
        assert torch.autograd.gradcheck(
            lambda x, y, k=kernels: ErrorLevelsFunction.apply(power, (0.3, 2.0), k, x, y, t, u), (s, r))


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_bckd_class_function_gradcheck_float64(beta):
    """The real Function, weight |p_t − p_s|^beta differentiated: float64 gradcheck of every CPU kernel."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(5, 4, dtype=torch.float64, generator=g)
    for kernels in ("torch", "compiled"):
        assert torch.autograd.gradcheck(lambda x, k=kernels: BCKDClassFunction.apply(x, t, beta, k)[0], (s,))


def _cwd_saved_tensors(s, t, kernels):
    value = CWDRowsFunction.apply(s.reshape(16, -1), t.reshape(16, -1), 1.0, kernels)
    return value.grad_fn.saved_tensors


def test_fused_cwd_on_cpu_saves_the_unscaled_gradient_only():
    s = features([(2, 8, 16, 16)], seed=1, requires_grad=True)[0]
    t = features([(2, 8, 16, 16)], seed=2)[0]
    for kernels in ("torch", "compiled"):
        (saved,) = _cwd_saved_tensors(s, t, kernels)
        expected = torch.softmax(s.detach().reshape(16, -1), 1) - torch.softmax(t.reshape(16, -1), 1)
        torch.testing.assert_close(saved, expected)  # one gradient-sized tensor, no softmax kept


@pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
def test_fused_cwd_triton_saves_statistics_not_softmaxes():
    s = features([(2, 8, 16, 16)], seed=1)[0].to(DEVICE).requires_grad_(True)
    t = features([(2, 8, 16, 16)], seed=2)[0].to(DEVICE)
    saved = _cwd_saved_tensors(s, t, "triton")
    full = [x for x in saved if x.numel() == s.numel()]
    assert len(full) == 2 and all(x.untyped_storage().data_ptr() in {s.untyped_storage().data_ptr(),
                                                                      t.untyped_storage().data_ptr()} for x in full)
    assert sorted(x.numel() for x in saved if x.numel() != s.numel()) == [16, 16]  # lse per row, N·C rows


@pytest.mark.parametrize("kernels", KERNELS)
def test_cwd_function_backward_twice_with_retain_graph(kernels):
    """The saved gradient is scaled out of place: a second backward (retain_graph) adds the same again."""
    s = features([(2, 8, 16, 16)], seed=1)[0].to(DEVICE).requires_grad_(True)
    t = features([(2, 8, 16, 16)], seed=2)[0].to(DEVICE)
    value = CWDRowsFunction.apply(s.reshape(16, -1), t.reshape(16, -1), 1.0, kernels, 0.5)
    (value * 3.0).backward(retain_graph=True)
    first = s.grad.clone()
    (value * 3.0).backward()
    torch.testing.assert_close(s.grad, 2 * first)


def test_every_fused_function_rejects_unknown_kernels_the_same_way():
    s, t = torch.randn(4, 9), torch.randn(4, 9)
    expected = r"kernels must be one of \('auto', 'triton', 'compiled', 'torch'\), got 'fast'"
    with pytest.raises(ValueError, match="CWD: " + expected):
        CWDRowsFunction.apply(s, t, 1.0, "fast")
    with pytest.raises(ValueError, match="BCKD: " + expected):
        BCKDClassFunction.apply(s, t, 1.0, "fast")
    out_s, out_t = detection_pair(dtype=torch.float32)
    with pytest.raises(ValueError, match="BCKD: " + expected):
        BCKDBoxFunction.apply(out_s.box, out_t.box, out_s.anchors, out_s.strides, torch.ones(2, 20), "fast")
    with pytest.raises(ValueError, match="error sum: " + expected):
        ErrorLevelsFunction.apply(2, (1.0,), "fast", s, t)


@pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
def test_float64_never_reaches_the_float32_triton_kernels():
    s = torch.randn(4, 9, dtype=torch.float64, device=DEVICE, requires_grad=True)
    t = torch.randn(4, 9, dtype=torch.float64, device=DEVICE)
    with pytest.raises(ValueError, match="CWD: the Triton kernels compute in float32"):
        CWDRowsFunction.apply(s, t, 1.0, "triton")
    with pytest.raises(ValueError, match="BCKD: the Triton kernels compute in float32"):
        BCKDClassFunction.apply(s, t, 1.0, "triton")
    # auto keeps float64 in float64 (on CUDA it would otherwise pick Triton)
    value = CWDRowsFunction.apply(s, t, 1.0, "auto")
    assert value.dtype == torch.float64
    expected = (torch.softmax(t, 1) * (torch.log_softmax(t, 1) - torch.log_softmax(s.detach(), 1))).sum()
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernels", ["torch", "compiled"])
def test_cwd_function_without_grad_gives_the_same_value(kernels):
    s = features([(2, 8, 16, 16)], seed=1)[0].reshape(16, -1)
    t = features([(2, 8, 16, 16)], seed=2)[0].reshape(16, -1)
    plain = CWDRowsFunction.apply(s, t, 1.3, kernels)
    with_grad = CWDRowsFunction.apply(s.clone().requires_grad_(True), t, 1.3, kernels)
    assert plain.grad_fn is None
    torch.testing.assert_close(plain, with_grad.detach())


def test_fused_bckd_class_term_saves_one_gradient_sized_tensor():
    """CPU kernels: forward writes the unscaled gradient, nothing else of size (R, nc) is kept."""
    s, t = detection_pair()
    rows_s, rows_t = s.cls.reshape(-1, 5), t.cls.reshape(-1, 5)
    for kernels in ("torch", "compiled"):
        total, _, _ = BCKDClassFunction.apply(rows_s, rows_t, 1.0, kernels)
        (saved,) = total.grad_fn.saved_tensors
        reference = rows_s.detach().clone().requires_grad_(True)
        official_novel_kd_loss(reference, rows_t, 1.0).sum().backward()
        torch.testing.assert_close(saved, reference.grad)


@pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
def test_fused_bckd_triton_saves_only_inputs():
    s = torch.randn(12, 5, device=DEVICE, requires_grad=True)
    t = torch.randn(12, 5, device=DEVICE)
    total, _, _ = BCKDClassFunction.apply(s, t, 1.0, "triton")
    assert all(x.numel() == s.numel() for x in total.grad_fn.saved_tensors)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bckd_softplus_without_log1p_is_accurate(dtype):
    """log(1 + exp(−|x|)) from log(u)·e/(u − 1): as accurate as torch.log1p, also where 1 + e rounds to 1."""
    x = torch.cat([torch.linspace(-80, 80, 100_001, dtype=dtype), torch.tensor([0.0, 1e-30, 20.0, -40.0], dtype=dtype)])
    sigmoid, softplus, slope = _sigmoid_softplus_and_slope(x)
    exact = torch.log1p(torch.exp(-x.double().abs()))
    rel = 4 * torch.finfo(dtype).eps
    torch.testing.assert_close(softplus.double(), exact, rtol=rel, atol=0)
    torch.testing.assert_close(sigmoid.double(), torch.sigmoid(x.double()), rtol=rel, atol=torch.finfo(dtype).eps)
    exact_sigmoid = torch.sigmoid(x.double())
    torch.testing.assert_close(slope.double(), exact_sigmoid * torch.sigmoid(-x.double()), rtol=rel, atol=0)


def test_bckd_fused_soft_count_matches_reference():
    s, t = detection_pair()
    _, _, pt_max = bckd_cls_forward(s.cls.reshape(-1, 5), t.cls.reshape(-1, 5), 1.0)
    torch.testing.assert_close(pt_max.sum(), torch.sigmoid(t.cls).amax(-1).sum())


def test_cwd_kernels_in_low_precision_accumulate_in_float32():
    s = torch.randn(8, 400).bfloat16()
    t = torch.randn(8, 400).bfloat16()
    total, lse_s, _ = cwd_rows_forward(s, t, 1.0)
    assert total.dtype == torch.float32 and lse_s.dtype == torch.float32
    torch.testing.assert_close(total, cwd_rows_forward(s.float(), t.float(), 1.0)[0])
    value, grad = cwd_rows_value_and_grad(s, t, 1.0)
    assert value.dtype == torch.float32 and grad.dtype == torch.float32
    torch.testing.assert_close(grad, torch.softmax(s.float(), 1) - torch.softmax(t.float(), 1))
    student = s.clone().requires_grad_(True)
    CWDRowsFunction.apply(student, t, 1.0, "torch").backward()
    assert student.grad.dtype == torch.bfloat16


def test_compiled_kernels_follow_a_new_beta():
    """A compiled kernel called with another float gives that float's result (torch 2.14's symbolic floats
    kept the first beta's graph for ``pow``; kdloss specialises floats)."""
    g = torch.Generator().manual_seed(2)
    s = torch.randn(20, 6, generator=g, requires_grad=True)
    t = torch.randn(20, 6, generator=g)
    for beta in (0.5, 2.0, 3.0, 0.5):
        got = BCKDClassFunction.apply(s, t, beta, "compiled")[0]
        expected = official_novel_kd_loss(s.detach(), t, beta).sum()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for tau in (1.0, 2.0, 4.0):
        got = CWDRowsFunction.apply(s, t, tau, "compiled")
        expected = CWDRowsFunction.apply(s, t, tau, "torch")
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_compile_handles_changing_shapes_without_error():
    loss = CWD(impl="compile")
    for size in (8, 6, 10):  # multi-scale training: H, W and batch change
        s, t = features([(size // 2, 3, size, size)], seed=size), features([(size // 2, 3, size, size)], seed=1)
        torch.testing.assert_close(loss(s, t), CWD(impl="eager")(s, t))


def test_empty_batch_every_impl():
    for impl in ("fused", "compile"):
        s = torch.zeros(0, 3, 4, 4, requires_grad=True)
        value = CWD(impl=impl)(s, torch.zeros(0, 3, 4, 4)) + Mimic(impl=impl)(s, torch.zeros(0, 3, 4, 4))
        value.backward()
        assert value.item() == 0.0
        out, t = detection_pair(batch=0)
        assert BCKD(impl=impl)(out, t).item() == 0.0 and L2(impl=impl)(out, t).item() == 0.0


def test_fused_under_autocast():
    s = features([(2, 4, 8, 8)], seed=1, requires_grad=True)[0]
    t = features([(2, 8, 8, 8)], seed=2)[0]
    out_s, out_t = detection_pair(dtype=torch.float32)
    cwd = CWD(student_channels=4, teacher_channels=8, impl="fused")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = cwd(s, t) + BCKD(impl="fused")(out_s, DetectionOutput(out_t.cls, out_t.box, out_t.anchors,
                                                                      out_t.strides))
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(out_s.cls.grad).all()
