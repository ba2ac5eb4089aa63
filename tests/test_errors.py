"""Bad input gives a ValueError (or TypeError) that names the loss, the level and both shapes."""

from __future__ import annotations

import pytest
import torch
from conftest import detection_pair, features

from kdloss import BCKD, CWD, L1, L2, LD, MGD, PKD, CrossKD, DetectionOutput, Mimic

FEATURE_LOSSES = [lambda: CWD(), lambda: Mimic(), lambda: MGD([3, 3], [3, 3])]
NAMES = ["CWD", "Mimic", "MGD"]


@pytest.mark.parametrize(("make", "name"), list(zip(FEATURE_LOSSES, NAMES)))
def test_level_count_mismatch(make, name):
    s = features([(2, 3, 8, 8), (2, 3, 4, 4)])
    with pytest.raises(ValueError, match=rf"{name}: student has 2 feature level\(s\) but teacher has 1"):
        make()(s, s[:1])


@pytest.mark.parametrize(("make", "name"), list(zip(FEATURE_LOSSES, NAMES)))
def test_spatial_mismatch_names_level_and_sizes(make, name):
    s = features([(2, 3, 8, 8), (2, 3, 40, 40)])
    t = features([(2, 3, 8, 8), (2, 3, 20, 20)])
    with pytest.raises(ValueError, match=rf"{name}: student and teacher spatial sizes differ at level 1: "
                                         r"\(40, 40\) vs \(20, 20\)"):
        make()(s, t)


@pytest.mark.parametrize("cls", [CWD, Mimic])
def test_channel_mismatch_without_align(cls):
    s, t = features([(2, 3, 8, 8)]), features([(2, 5, 8, 8)])
    with pytest.raises(ValueError, match=rf"{cls.__name__}: student and teacher channels differ at level 0: 3 vs 5 "
                                         r"\(shapes \(2, 3, 8, 8\) vs \(2, 5, 8, 8\)\)"):
        cls()(s, t)


def test_align_built_for_other_channels():
    loss = CWD(student_channels=[4, 6], teacher_channels=[8, 8])
    s = features([(2, 4, 8, 8), (2, 5, 4, 4)])
    t = features([(2, 8, 8, 8), (2, 8, 4, 4)])
    with pytest.raises(ValueError, match=r"CWD: student features at level 1 should have 6 channels"):
        loss(s, t)
    with pytest.raises(ValueError, match=r"CWD: built for 2 feature level\(s\)"):
        loss(s[:1], t[:1])


def test_half_given_channels():
    with pytest.raises(ValueError, match="give both student_channels and teacher_channels"):
        CWD(student_channels=4)


@pytest.mark.parametrize(("make", "name"), list(zip(FEATURE_LOSSES, NAMES)))
def test_non_floating_dtype(make, name):
    s = torch.ones(2, 3, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=rf"{name}: student features at level 0 must be a floating-point tensor"):
        make()(s, s.float())


@pytest.mark.parametrize(("make", "name"), list(zip(FEATURE_LOSSES, NAMES)))
def test_different_devices(make, name):
    s = torch.randn(2, 3, 4, 4)
    t = torch.empty(2, 3, 4, 4, device="meta")
    with pytest.raises(ValueError, match=rf"{name}: student and teacher features at level 0 are on different devices"):
        make()(s, t)


def test_wrong_rank_and_batch():
    with pytest.raises(ValueError, match=r"CWD: features must be \(N, C, H, W\) at level 0"):
        CWD()(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"Mimic: student and teacher batch sizes differ at level 0: 2 vs 3"):
        Mimic()(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_finite_rejects_bad_teacher(bad):
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t[0, 0, 0, 0] = bad
    assert not torch.isfinite(CWD()(s, t))  # unchecked: the NaN/inf flows through, as in any torch loss
    with pytest.raises(ValueError, match=r"CWD: teacher features at level 0 contains 1 NaN/inf value"):
        CWD(check_finite=True)(s, t)


LOGIT_LOSSES = [(L1, "L1"), (L2, "L2"), (BCKD, "BCKD")]


@pytest.mark.parametrize(("cls", "name"), LOGIT_LOSSES)
def test_detection_shape_mismatch(cls, name):
    s, _ = detection_pair(nc=5)
    _, t = detection_pair(nc=4)
    message = rf"{name}: student and teacher cls shapes differ: \(2, 20, 5\) vs \(2, 20, 4\)"
    with pytest.raises(ValueError, match=message):
        cls()(s, t)


@pytest.mark.parametrize(("cls", "name"), LOGIT_LOSSES)
def test_detection_bad_layout(cls, name):
    s, t = detection_pair()
    bad = DetectionOutput(cls=s.cls, box=s.box.flatten(2), anchors=s.anchors, strides=s.strides)
    with pytest.raises(ValueError, match=rf"{name}: student.box must be \(B, A, 4, reg_max\), got \(2, 20, 32\)"):
        cls()(bad, t)
    bad = DetectionOutput(cls=s.cls[:, :10], box=s.box, anchors=s.anchors, strides=s.strides)
    with pytest.raises(ValueError, match=rf"{name}: student.box and student.cls disagree on \(B, A\)"):
        cls()(bad, t)


@pytest.mark.parametrize(("cls", "name"), LOGIT_LOSSES)
def test_detection_dtype_type_device(cls, name):
    s, t = detection_pair()
    bad = DetectionOutput(cls=s.cls.long(), box=s.box, anchors=s.anchors, strides=s.strides)
    with pytest.raises(ValueError, match=rf"{name}: student.cls must be a floating-point tensor"):
        cls()(bad, t)
    with pytest.raises(TypeError, match=rf"{name}: teacher must be a kdloss.DetectionOutput, got dict"):
        cls()(s, {"cls": t.cls})
    meta = DetectionOutput(cls=t.cls.to("meta"), box=t.box.to("meta"), anchors=t.anchors, strides=t.strides)
    with pytest.raises(ValueError, match=rf"{name}: student and teacher cls are on different devices"):
        cls()(s, meta)


def test_bckd_needs_anchors():
    s, t = detection_pair()
    no_anchors = DetectionOutput(cls=s.cls, box=s.box)
    with pytest.raises(ValueError, match=r"BCKD: student needs anchors \(A, 2\) and strides \(A,\)"):
        BCKD()(no_anchors, t)
    L1()(no_anchors, t)  # L1/L2 compare raw logits and need no anchors
    wrong = DetectionOutput(cls=s.cls, box=s.box, anchors=s.anchors[:5], strides=s.strides)
    with pytest.raises(ValueError, match=r"BCKD: student.anchors must be \(20, 2\) and strides \(20,\), got \(5, 2\)"):
        BCKD()(wrong, t)


def test_bckd_anchors_on_another_device():
    s, t = detection_pair()
    moved = DetectionOutput(cls=s.cls, box=s.box, anchors=s.anchors.to("meta"), strides=s.strides)
    with pytest.raises(ValueError, match=r"BCKD: student.anchors is on meta but student.cls on cpu"):
        BCKD()(moved, t)


def test_bckd_bad_avg_factor():
    s, t = detection_pair()
    with pytest.raises(ValueError, match="BCKD: avg_factor must be a positive scalar"):
        BCKD()(s, t, avg_factor=0.0)
    with pytest.raises(ValueError, match="BCKD: avg_factor must be a positive scalar"):
        BCKD()(s, t, avg_factor=torch.tensor(-1.0))
    with pytest.raises(ValueError, match="LD: avg_factor must be a positive scalar"):
        LD()(s, t, avg_factor=torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(BCKD()(s, t, avg_factor=torch.tensor(3.0)), BCKD()(s, t, avg_factor=3.0))


def test_check_finite_in_detection_output():
    s, t = detection_pair()
    t.cls.data[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"BCKD: teacher.cls contains 1 NaN/inf value"):
        BCKD(check_finite=True)(s, t)


# Every loss: a student with another number of feature levels than the teacher is an error, never a loss over
# the levels both have (PKD's resize once zipped the levels first and silently returned level 0's loss).
LEVEL_LOSSES = {"CWD": lambda: CWD(), "Mimic": lambda: Mimic(), "PKD": lambda: PKD(),
                "MGD": lambda: MGD([3, 3], [3, 3])}


@pytest.mark.parametrize("name", sorted(LEVEL_LOSSES))
def test_every_feature_loss_refuses_another_level_count(name):
    two = features([(2, 3, 8, 8), (2, 3, 4, 4)])
    with pytest.raises(ValueError, match=rf"{name}: student has 2 feature level\(s\) but teacher has 1"):
        LEVEL_LOSSES[name]()(two, two[:1])
    with pytest.raises(ValueError, match=rf"{name}: student has 1 feature level\(s\) but teacher has 2"):
        LEVEL_LOSSES[name]()(two[:1], two)


@pytest.mark.parametrize("cls", [L1, L2, BCKD, LD])
def test_every_logit_loss_refuses_outputs_of_other_levels(cls):
    """Head outputs of two levels against one level's: the anchor counts differ, and the error says so."""
    student, _ = detection_pair(sizes=((4, 4), (2, 2)))
    _, teacher = detection_pair(sizes=((4, 4),))
    with pytest.raises(ValueError, match=rf"{cls.__name__}: student and teacher cls shapes differ: \(2, 20, 5\) vs "
                                         r"\(2, 16, 5\) \(20 anchors vs 16: other feature levels"):
        cls()(student, teacher)


def test_crosskd_refuses_another_level_count():
    loss = CrossKD(student_channels=[4, 4], teacher_channels=[4, 4])
    feats = features([(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)])
    _, teacher = detection_pair()
    with pytest.raises(ValueError, match=r"CrossKD: built for 2 feature level\(s\)"):
        loss(feats, teacher, lambda aligned: teacher)


NAN, INF = float("nan"), float("inf")
BAD_HYPER_PARAMETERS = [
    (lambda: L1(loss_weight=-1), r"L1: loss_weight must be >= 0 and finite, got -1"),
    (lambda: L2(loss_weight=NAN), r"L2: loss_weight must be >= 0 and finite, got nan"),
    (lambda: CWD(loss_weight=INF), r"CWD: loss_weight must be >= 0 and finite, got inf"),
    (lambda: CWD(tau=INF), r"CWD: tau must be > 0 and finite, got inf"),
    (lambda: CWD(tau=NAN), r"CWD: tau must be > 0 and finite, got nan"),
    (lambda: BCKD(cls_weight=-1), r"BCKD: cls_weight must be >= 0 and finite, got -1"),
    (lambda: BCKD(box_weight=NAN), r"BCKD: box_weight must be >= 0 and finite, got nan"),
    (lambda: BCKD(beta=INF), r"BCKD: beta must be > 0 and finite, got inf"),
    (lambda: LD(temperature=INF), r"LD: temperature must be > 0 and finite, got inf"),
    (lambda: MGD([3], [3], alpha_mgd=INF), r"MGD: alpha_mgd must be > 0 and finite, got inf"),
    (lambda: PKD(loss_weight=-0.5), r"PKD: loss_weight must be >= 0 and finite, got -0.5"),
    (lambda: Mimic(loss_weight="1"), r"Mimic: loss_weight must be >= 0 and finite, got '1'"),
    (lambda: CrossKD([3], [3], kl_weight=-1), r"CrossKD: kl_weight must be >= 0 and finite, got -1"),
    (lambda: CrossKD([3], [3], giou_weight=NAN), r"CrossKD: giou_weight must be >= 0 and finite, got nan"),
]


@pytest.mark.parametrize(("make", "message"), BAD_HYPER_PARAMETERS, ids=[m for _, m in BAD_HYPER_PARAMETERS])
def test_modules_validate_their_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_zero_weights_are_allowed():
    """0 switches a term off (BCKD's box term alone, ``bckd_cls_weight=0`` in the adapter)."""
    student, teacher = detection_pair()
    assert BCKD(cls_weight=0, loss_weight=0)(student, teacher) == 0
