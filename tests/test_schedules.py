"""Schedules at their end points and midpoints, warm-up, and the weighted combination of losses."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import detection_pair, features

from kdloss import BCKD, CWD, DistillationLoss, Mimic, Schedule


@pytest.mark.parametrize(
    ("kind", "final", "p", "expected"),
    [
        ("constant", 0.1, 0.0, 1.0), ("constant", 0.1, 0.5, 1.0), ("constant", 0.1, 1.0, 1.0),
        ("linear", 0.1, 0.0, 1.0), ("linear", 0.1, 0.5, 0.55), ("linear", 0.1, 1.0, 0.1),
        ("linear", 0.0, 0.25, 0.75),
        ("cosine", 0.1, 0.0, 1.0), ("cosine", 0.1, 0.5, 0.55), ("cosine", 0.1, 1.0, 0.1),
        ("cosine", 0.0, 0.25, (1 + math.cos(math.pi / 4)) / 2),
    ],
)
def test_schedule_formulas(kind, final, p, expected):
    assert Schedule(kind, final_ratio=final)(p) == pytest.approx(expected)


def test_warmup_ramps_then_runs_schedule_on_the_rest():
    s = Schedule("linear", final_ratio=0.0, warmup=0.2)
    assert s(0.0) == 0.0
    assert s(0.1) == pytest.approx(0.5)
    assert s(0.2) == pytest.approx(1.0)
    assert s(0.6) == pytest.approx(0.5)
    assert s(1.0) == pytest.approx(0.0)


def test_at_step_and_clamping():
    s = Schedule("cosine", final_ratio=0.0)
    assert s.at(5, 10) == pytest.approx(0.5)  # per epoch or per iteration: the caller's count
    assert s(-1.0) == 1.0 and s(2.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="total_steps must be > 0"):
        s.at(1, 0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "exp"}, "kind must be one of"), ({"warmup": 1.0}, r"warmup must be in \[0, 1\)"),
    ({"final_ratio": -1.0}, "final_ratio must be >= 0"),
])
def test_schedule_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_distillation_loss_total_and_parts():
    s_f, t_f = features([(2, 3, 4, 4)], seed=1, requires_grad=True), features([(2, 3, 4, 4)], seed=2)
    s_o, t_o = detection_pair()
    criterion = DistillationLoss(
        {"cwd": CWD(tau=2.0), "bckd": BCKD(), "mimic": Mimic()},
        weights={"cwd": 2.0, "bckd": 0.5},
        schedules={"bckd": Schedule("linear", final_ratio=0.0)},
    )
    inputs = {"cwd": (s_f, t_f), "bckd": {"student": s_o, "teacher": t_o, "avg_factor": 4.0}, "mimic": (s_f, t_f)}
    total, parts = criterion(inputs, progress=0.5)
    assert list(parts) == criterion.part_keys() == ["cwd", "bckd_cls", "bckd_box", "mimic"]
    bckd = BCKD().parts(s_o, t_o, avg_factor=4.0)
    torch.testing.assert_close(parts["cwd"], 2.0 * CWD(tau=2.0)(s_f, t_f).detach())
    torch.testing.assert_close(parts["bckd_cls"], 0.25 * bckd["cls"].detach())
    torch.testing.assert_close(parts["bckd_box"], 0.25 * bckd["box"].detach())
    torch.testing.assert_close(total.detach(), sum(parts.values()).to(total.dtype))
    assert all(not v.requires_grad for v in parts.values())
    total.backward()
    assert s_f[0].grad is not None and s_o.cls.grad is not None


def test_distillation_loss_trains_learnable_parts_and_rejects_bad_names():
    criterion = DistillationLoss({"cwd": CWD(student_channels=2, teacher_channels=4)})
    assert len(list(criterion.parameters())) == 2  # the align conv is registered, saved and moved
    with pytest.raises(ValueError, match=r"missing \['cwd'\], unknown \['cdw'\]"):
        criterion({"cdw": ()})
    with pytest.raises(ValueError, match=r"weights name unknown loss\(es\) \['bckd'\]"):
        DistillationLoss({"cwd": CWD()}, weights={"bckd": 1.0})
