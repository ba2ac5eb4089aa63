"""L1, L2 and BCKD against their formulas written out plainly."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import detection_pair

import kdloss.functional as KF
from kdloss import BCKD, L1, L2, DetectionOutput
from kdloss.detection import decode_dfl_boxes, generalized_iou


def all_outputs(out):
    return torch.cat((out.cls.flatten(), out.box.flatten())).double()


@pytest.mark.parametrize(("cls", "power"), [(L1, 1), (L2, 2)])
def test_l1_l2_are_means_over_all_raw_outputs(cls, power):
    s, t = detection_pair(dtype=torch.float32)
    expected = (all_outputs(s) - all_outputs(t)).abs().pow(power).mean()
    got = cls(loss_weight=2.0)(s, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), 2.0 * expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn", [KF.l1, KF.l2])
def test_l1_l2_gradcheck(fn):
    s, t = detection_pair()
    s_box = s.box.detach().clone().requires_grad_(True)

    def f(cls, box):
        return fn(DetectionOutput(cls=cls, box=box), t)

    # nudge away from |x| kinks for L1
    assert torch.autograd.gradcheck(f, (s.cls, s_box))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def plain_box(logits, anchor, stride):
    """(x1, y1, x2, y2) from one anchor's (4, reg_max) DFL logits, with python floats."""
    dist = []
    for side in range(4):
        exps = [math.exp(v) for v in logits[side].tolist()]
        dist.append(sum(k * e for k, e in enumerate(exps)) / sum(exps))
    ax, ay = anchor.tolist()
    return [(ax - dist[0]) * stride, (ay - dist[1]) * stride, (ax + dist[2]) * stride, (ay + dist[3]) * stride]


def plain_giou(a, b):
    area = lambda r: max(r[2] - r[0], 0) * max(r[3] - r[1], 0)  # noqa: E731
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def bckd_reference(s, t, cls_weight, box_weight, beta, avg_factor):
    """BCKD (arXiv 2308.14286) one element at a time in python floats."""
    b_count, a_count, nc = s.cls.shape
    cls_sum, box_sum, soft_count = 0.0, 0.0, 0.0
    for b in range(b_count):
        for a in range(a_count):
            gaps = []
            for c in range(nc):
                x = s.cls[b, a, c].item()
                p_t, p_s = sigmoid(t.cls[b, a, c].item()), sigmoid(x)
                bce = -(p_t * math.log(p_s) + (1 - p_t) * math.log(1 - p_s))
                gaps.append(abs(p_t - p_s))
                cls_sum += bce * abs(p_t - p_s) ** beta
            soft_count += max(sigmoid(t.cls[b, a, c].item()) for c in range(nc))
            stride = s.strides[a].item()
            box_s = plain_box(s.box[b, a], s.anchors[a], stride)
            giou = plain_giou(box_s, plain_box(t.box[b, a], t.anchors[a], stride))
            box_sum += max(gaps) * (1 - giou)
    norm = max(1.0, soft_count) if avg_factor is None else avg_factor
    return cls_weight * cls_sum / norm, box_weight * box_sum / norm


@pytest.mark.parametrize(("beta", "avg_factor"), [(1.0, None), (2.0, 7.0), (0.5, None)])
def test_bckd_matches_formula(beta, avg_factor):
    s, t = detection_pair(batch=2, sizes=((3, 3), (2, 2)), nc=3, reg_max=6)
    loss = BCKD(cls_weight=1.5, box_weight=4.0, beta=beta)
    parts = loss.parts(s, t, avg_factor=avg_factor)
    exp_cls, exp_box = bckd_reference(s, t, 1.5, 4.0, beta, avg_factor)
    assert parts["cls"].item() == pytest.approx(exp_cls, rel=1e-9)
    assert parts["box"].item() == pytest.approx(exp_box, rel=1e-9)
    assert loss(s, t, avg_factor=avg_factor).item() == pytest.approx(exp_cls + exp_box, rel=1e-9)


def test_bckd_default_avg_factor_is_teacher_soft_count():
    s, t = detection_pair()
    soft_count = torch.sigmoid(t.cls).amax(-1).sum().clamp(min=1).item()
    default = KF.bckd_parts(s, t)
    explicit = KF.bckd_parts(s, t, avg_factor=soft_count)
    doubled = KF.bckd_parts(s, t, avg_factor=2 * soft_count)
    torch.testing.assert_close(default.cls, explicit.cls)
    torch.testing.assert_close(default.box, explicit.box)
    torch.testing.assert_close(doubled.cls * 2, default.cls)


def test_bckd_default_avg_factor_never_below_one():
    s, t = detection_pair(batch=1, sizes=((1, 1),))
    t.cls.data.fill_(-30.0)  # confident background: soft count ~ 0
    torch.testing.assert_close(KF.bckd_parts(s, t).cls, KF.bckd_parts(s, t, avg_factor=1.0).cls)


def numeric_gradient(fn, x, eps=1e-6):
    """Central finite differences of scalar fn at float64 x."""
    grad = torch.zeros_like(x)
    flat = grad.view(-1)
    for i in range(x.numel()):
        step = torch.zeros_like(x).view(-1)
        step[i] = eps
        step = step.view_as(x)
        flat[i] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


def official_bckd(s, t, beta, avg_factor, box_weight=4.0):
    """BCKD as the official code computes it, written out with plain autograd (TinyTigerPan/BCKD):
    class term ``novel_kd_loss`` (mmdet/models/losses/kd_loss.py: target detached, ``score =
    pred.sigmoid()`` not detached, BCE · |target − score|^beta summed over classes) and box term as in
    mmdet/models/dense_heads/ld_head.py (``weight_targets3 = soft_label.sigmoid() − cls_score.detach().sigmoid()``,
    weight ``|·|.max(dim=1)``, GIoU loss on the decoded boxes against the detached teacher boxes), both divided
    by ``avg_factor``."""
    target = t.cls.sigmoid().detach()
    score = s.cls.sigmoid()
    cls = (torch.nn.functional.binary_cross_entropy_with_logits(s.cls, target, reduction="none")
           * (target - score).abs().pow(beta)).sum() / avg_factor
    box_weight_targets = (target - s.cls.detach().sigmoid()).abs().amax(-1)
    box_s = decode_dfl_boxes(s.box, s.anchors, s.strides)
    box_t = decode_dfl_boxes(t.box, t.anchors, t.strides).detach()
    box = box_weight * (box_weight_targets * (1 - generalized_iou(box_s, box_t))).sum() / avg_factor
    return cls, box


@pytest.mark.parametrize("impl", ["eager", "fused", "compile"])
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_bckd_values_and_gradients_equal_the_official_code(impl, beta):
    s, t = detection_pair(batch=2, nc=6, reg_max=8, seed=3)
    t.cls.requires_grad_(True)
    t.box.requires_grad_(True)
    cls, box = KF.bckd_parts(s, t, beta=beta, avg_factor=3.0, impl=impl)
    (cls + box).backward()
    assert t.cls.grad is None and t.box.grad is None
    ref_s = DetectionOutput(s.cls.detach().clone().requires_grad_(True), s.box.detach().clone().requires_grad_(True),
                            s.anchors, s.strides)
    ref_cls, ref_box = official_bckd(ref_s, t, beta, 3.0)
    (ref_cls + ref_box).backward()
    torch.testing.assert_close(cls, ref_cls, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(box, ref_box, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.cls.grad, ref_s.cls.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(s.box.grad, ref_s.box.grad, rtol=1e-9, atol=1e-12)


def test_bckd_class_gradient_goes_through_the_weight():
    """Where the student is confidently wrong, the weight's gradient dominates: the detached-weight form
    (BCE'·w alone) would be far off the official gradient."""
    s = torch.tensor([[6.0, -6.0, 0.3]], dtype=torch.float64).reshape(1, 1, 3).requires_grad_(True)
    t = torch.tensor([[-6.0, 6.0, 0.2]], dtype=torch.float64).reshape(1, 1, 3)
    box = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    anchors, strides = torch.tensor([[0.5, 0.5]], dtype=torch.float64), torch.tensor([8.0], dtype=torch.float64)
    out_s, out_t = DetectionOutput(s, box, anchors, strides), DetectionOutput(t, box, anchors, strides)
    KF.bckd_parts(out_s, out_t, avg_factor=1.0).cls.backward()
    p_s, p_t = torch.sigmoid(s.detach()), torch.sigmoid(t)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(s.detach(), p_t, reduction="none")
    detached_weight_grad = (p_s - p_t) * (p_s - p_t).abs()
    official = detached_weight_grad + bce * torch.sign(p_s - p_t) * p_s * (1 - p_s)
    torch.testing.assert_close(s.grad, official)
    assert (s.grad[0, 0, :2] - detached_weight_grad[0, 0, :2]).abs().min() > 1e-2


@pytest.mark.parametrize("impl", ["eager", "fused"])  # compile: equal to eager (test_impls); its donated
@pytest.mark.parametrize("beta", [1.0, 2.0])                # buffers refuse gradcheck's retain_graph
def test_bckd_gradcheck_float64(impl, beta):
    """float64 gradcheck of the real function: the class term against the class logits (weight
    differentiated), the box term against the box logits (its weight is a constant, as in the official code)."""
    s, t = detection_pair(batch=1, sizes=((2, 2),), nc=3, reg_max=4, seed=5)

    def cls_term(cls):
        return KF.bckd_parts(DetectionOutput(cls, s.box.detach(), s.anchors, s.strides), t, beta=beta,
                             avg_factor=2.0, impl=impl).cls

    def box_term(box):
        return KF.bckd_parts(DetectionOutput(s.cls.detach(), box, s.anchors, s.strides), t, beta=beta,
                             avg_factor=2.0, impl=impl).box

    assert torch.autograd.gradcheck(cls_term, (s.cls,))
    assert torch.autograd.gradcheck(box_term, (s.box,))


def test_bckd_gradient_is_finite_where_student_equals_teacher():
    """beta < 1: the weight's gradient at p_s == p_t is taken as 0 where autograd's pow gives NaN."""
    s, t = detection_pair(seed=7)
    same = DetectionOutput(s.cls.detach().clone().requires_grad_(True), s.box, s.anchors, s.strides)
    teacher = DetectionOutput(s.cls.detach(), t.box, t.anchors, t.strides)
    official = s.cls.detach().clone().requires_grad_(True)
    official_bckd(DetectionOutput(official, s.box.detach(), s.anchors, s.strides), teacher, 0.5, 1.0)[0].backward()
    assert torch.isnan(official.grad).all()  # what the official formula gives there
    for impl in ("eager", "fused", "compile"):
        same.cls.grad = None
        KF.bckd_parts(same, teacher, beta=0.5, impl=impl).cls.backward()
        assert torch.isfinite(same.cls.grad).all()
        if impl == "eager":  # the fused kernels' sigmoids may round p_s and p_t apart by an ulp
            assert same.cls.grad.abs().max() == 0


def test_bckd_box_weight_is_detached():
    """The box term's gradient reaches only the box logits: w_ba = max_c |p_t − p_s| is a constant."""
    s, t = detection_pair()
    KF.bckd_parts(s, t).box.backward()
    assert s.cls.grad is None or s.cls.grad.abs().sum() == 0
    assert s.box.grad.abs().sum() > 0


def test_decode_and_giou_against_plain_python():
    s, _ = detection_pair(batch=1)
    boxes = decode_dfl_boxes(s.box.detach(), s.anchors, s.strides)
    for a in range(s.num_anchors):
        expected = plain_box(s.box[0, a].detach(), s.anchors[a], s.strides[a].item())
        torch.testing.assert_close(boxes[0, a], torch.tensor(expected, dtype=torch.float64))
    other = boxes.flip(1)
    giou = generalized_iou(boxes, other)
    for a in range(s.num_anchors):
        assert giou[0, a].item() == pytest.approx(plain_giou(boxes[0, a].tolist(), other[0, a].tolist()), rel=1e-6)
    torch.testing.assert_close(generalized_iou(boxes, boxes), torch.ones_like(giou))


def test_decode_without_dfl_uses_raw_distances():
    """reg_max = 1 (YOLO26-style heads): the box output is the (l, t, r, b) distance in stride units."""
    anchors = torch.tensor([[2.5, 3.5]], dtype=torch.float64)
    strides = torch.tensor([8.0], dtype=torch.float64)
    raw = torch.tensor([[[[1.0], [2.0], [3.0], [4.0]]]], dtype=torch.float64)
    expected = torch.tensor([[[(2.5 - 1) * 8, (3.5 - 2) * 8, (2.5 + 3) * 8, (3.5 + 4) * 8]]], dtype=torch.float64)
    torch.testing.assert_close(decode_dfl_boxes(raw, anchors, strides), expected)
    s, t = detection_pair(reg_max=1)
    assert torch.isfinite(BCKD()(s, t)) and BCKD().parts(s, t)["box"].item() > 0


def test_bckd_identical_outputs_give_zero():
    s, _ = detection_pair()
    same = DetectionOutput(s.cls.detach(), s.box.detach(), s.anchors, s.strides)
    assert BCKD()(s, same).item() == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("cls", [L1, L2, BCKD])
def test_empty_batch(cls):
    s, t = detection_pair(batch=0)
    value = cls()(s, t)
    assert value.item() == 0.0
    value.backward()
    assert s.cls.grad is not None and s.cls.grad.shape == s.cls.shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [L1, L2, BCKD])
def test_low_precision_inputs(dtype, cls):
    s, t = detection_pair(dtype=torch.float32)
    low_s = DetectionOutput(s.cls.to(dtype), s.box.to(dtype), s.anchors, s.strides)
    low_t = DetectionOutput(t.cls.to(dtype), t.box.to(dtype), t.anchors, t.strides)
    got = cls()(low_s, low_t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, cls()(s, t), rtol=3e-2, atol=1e-3)


def test_bckd_under_autocast():
    s, t = detection_pair(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = BCKD()(s, t)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(s.cls.grad).all() and torch.isfinite(s.box.grad).all()
