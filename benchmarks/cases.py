"""Benchmark cases at real YOLOv8 shapes (imgsz 640): every implementation of a loss on the same inputs.

Feature losses: the teacher is yolov8s (neck P3/P4/P5: 128, 256, 512 channels at 80², 40², 20²); the
student is yolov8n (64, 128, 256 channels), already aligned to the teacher's channels where the loss
needs it (the align conv is not what is measured). Head outputs: A = 8400 anchors, nc = 80, reg_max = 16.

The hyper-parameters are the defaults, written out once as constant Python floats and given alike to the
reference and to kdloss: the same value on every call, so no compiled kernel recompiles or re-guards on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import kdloss.functional as KF
from benchmarks import references
from kdloss import DetectionOutput
from kdloss.nn.feature import generation_block

LEVELS = {"P3": (128, 80), "P4": (256, 40), "P5": (512, 20)}
NC, REG_MAX = 80, 16
IMPLS = ("reference", "eager", "fused", "compile")
TAU = 1.0
ALPHA_MGD, LAMBDA_MGD = 2e-5, 0.65
BCKD_PARAMS = {"cls_weight": 1.0, "box_weight": 4.0, "beta": 1.0}
LD_TEMPERATURE = 10.0


@dataclass
class Case:
    """``run[impl]()`` returns a scalar loss on the case's tensors; ``student`` holds those that need
    gradients, ``teacher`` their constant counterparts."""

    loss: str
    shape: str
    student: list[Tensor]
    teacher: list[Tensor]
    run: dict[str, Callable[[], Tensor]]


def _feature(batch: int, level: str, device: str, requires_grad: bool) -> Tensor:
    c, hw = LEVELS[level]
    return torch.randn(batch, c, hw, hw, device=device, requires_grad=requires_grad)


def cwd_case(batch: int, level: str, device: str) -> Case:
    s, t = _feature(batch, level, device, True), _feature(batch, level, device, False)
    run = {"reference": lambda: references.cwd_mmrazor_style(s, t, TAU)}
    run |= {impl: (lambda impl=impl: KF.cwd(s, t, TAU, impl=impl)) for impl in IMPLS[1:]}
    return Case("cwd", f"{level} {tuple(s.shape)}", [s], [t], run)


def level_sum_case(loss: str, reference: Callable, fn: Callable, batch: int, device: str) -> Case:
    """A feature loss summed over P3, P4 and P5 (Mimic, PKD): ``reference(s, t)`` per level against ``fn``."""
    s = [_feature(batch, level, device, True) for level in LEVELS]
    t = [_feature(batch, level, device, False) for level in LEVELS]
    run = {"reference": lambda: sum(reference(a, b) for a, b in zip(s, t))}
    run |= {impl: (lambda impl=impl: fn(s, t, impl=impl)) for impl in IMPLS[1:]}
    return Case(loss, "P3+P4+P5", s, t, run)


MGD_PARTS = ("loss", "convs")  # MGD's time apart: the loss without its generation convs, and the convs alone


def mgd_case(batch: int, device: str, part: str = "all") -> Case:
    """MGD over P3+P4+P5: ``part="all"`` the whole loss; ``"loss"`` the same with identity generation networks
    (the mask and the error sum: what the implementations differ in); ``"convs"`` the generation convs alone,
    forward and backward, the same for every implementation (``Σ generation(s)`` as the scalar)."""
    s = [_feature(batch, level, device, True) for level in LEVELS]
    t = [_feature(batch, level, device, False) for level in LEVELS]
    if part == "loss":
        nets = [torch.nn.Identity() for _ in LEVELS]
    else:
        nets = [generation_block(c).to(device) for c, _ in LEVELS.values()]
    if part == "convs":
        convs = lambda: sum(net(a).sum() for a, net in zip(s, nets))  # noqa: E731
        return Case("mgd", "convs P3+P4+P5", s, t, dict.fromkeys(IMPLS, convs))
    run = {"reference": lambda: sum(references.mgd_official_style(a, b, g, ALPHA_MGD, LAMBDA_MGD)
                                    for a, b, g in zip(s, t, nets))}
    run |= {impl: (lambda impl=impl: KF.mgd(s, t, nets, alpha_mgd=ALPHA_MGD, lambda_mgd=LAMBDA_MGD, impl=impl))
            for impl in IMPLS[1:]}
    return Case("mgd", "P3+P4+P5" if part == "all" else f"{part} P3+P4+P5", s, t, run)


def _head(batch: int, device: str, requires_grad: bool) -> DetectionOutput:
    anchors, strides = [], []
    for stride, size in ((8, 80), (16, 40), (32, 20)):
        ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
        anchors.append(torch.stack((xs.flatten(), ys.flatten()), -1))
        strides.append(torch.full((size * size,), float(stride)))
    a = sum(size * size for size in (80, 40, 20))
    cls = (torch.randn(batch, a, NC, device=device) - 4).requires_grad_(requires_grad)
    box = torch.randn(batch, a, 4, REG_MAX, device=device).requires_grad_(requires_grad)
    return DetectionOutput(cls, box, torch.cat(anchors).to(device), torch.cat(strides).to(device))


def logit_case(loss: str, batch: int, device: str) -> Case:
    s, t = _head(batch, device, True), _head(batch, device, False)
    if loss == "bckd":
        reference = lambda: references.bckd_official_style(s.cls, s.box, t.cls, t.box, s.anchors, s.strides,  # noqa: E731
                                                           **BCKD_PARAMS)
        fn = functools.partial(KF.bckd, **BCKD_PARAMS)
    elif loss == "ld":
        reference = lambda: references.ld_official_style(s.box, t.box, t.cls, LD_TEMPERATURE)  # noqa: E731
        fn = functools.partial(KF.ld, temperature=LD_TEMPERATURE)
    elif loss == "crosskd":
        reference = lambda: references.crosskd_official_style(s.cls, s.box, t.cls, t.box, s.anchors,  # noqa: E731
                                                              s.strides)
        fn = KF.crosskd
    else:
        ref_fn = references.l1_reference if loss == "l1" else references.l2_reference
        reference = lambda: ref_fn(s.cls, s.box, t.cls, t.box)  # noqa: E731
        fn = KF.l1 if loss == "l1" else KF.l2
    run = {"reference": reference} | {impl: (lambda impl=impl: fn(s, t, impl=impl)) for impl in IMPLS[1:]}
    return Case(loss, f"A=8400 nc={NC} reg_max={REG_MAX} B={batch}", [s.cls, s.box], [t.cls, t.box], run)


def case_keys(losses: tuple[str, ...]) -> list[tuple[str, str]]:
    """(loss, level) for every case: CWD once per neck level and once over all three, MGD whole and in its two
    parts (:data:`MGD_PARTS`), the others once."""
    parts = {"cwd": [*LEVELS, "all"], "mgd": ["all", *MGD_PARTS]}
    return [(loss, level) for loss in losses for level in parts.get(loss, ["all"])]


def case_level(case: Case) -> str:
    """The ``level`` that :func:`build_case` builds ``case`` from (its shape's first word, else ``"all"``)."""
    first = case.shape.split()[0]
    return first if first in (*LEVELS, *MGD_PARTS) else "all"


def build_case(loss: str, level: str, batch: int, device: str) -> Case:
    if loss == "cwd" and level == "all":  # the levels in one call: one Triton launch each way on CUDA
        return level_sum_case("cwd", lambda s, t: references.cwd_mmrazor_style(s, t, TAU),
                              lambda s, t, impl: KF.cwd(s, t, TAU, impl=impl), batch, device)
    if loss == "cwd":
        return cwd_case(batch, level, device)
    if loss == "mimic":
        return level_sum_case("mimic", references.mimic_reference, KF.mimic, batch, device)
    if loss == "mgd":
        return mgd_case(batch, device, level)
    if loss == "pkd":
        return level_sum_case("pkd", references.pkd_mmrazor_style, KF.pkd, batch, device)
    return logit_case(loss, batch, device)


def all_cases(batch: int, device: str, losses: tuple[str, ...]) -> list[Case]:
    return [build_case(loss, level, batch, device) for loss, level in case_keys(losses)]
