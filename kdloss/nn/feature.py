"""Feature-distillation modules: hyper-parameters and learnable parts around kdloss.functional."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdloss._checks import FeatureLevels, as_level_list, check_positive, feature_levels
from kdloss.functional.cwd import cwd
from kdloss.functional.mgd import mgd
from kdloss.functional.mimic import mimic
from kdloss.functional.pkd import pkd
from kdloss.nn.align import ChannelAlign, Channels, per_level_channels
from kdloss.nn.base import DistillLoss


class _FeatureLoss(DistillLoss):
    """Shared by CWD and Mimic: optional align convs when student and teacher channels differ."""

    name = "feature loss"

    def __init__(self, loss_weight: float, student_channels: Channels | None, teacher_channels: Channels | None,
                 check_finite: bool, impl: str):
        super().__init__(loss_weight, check_finite, impl)
        if (student_channels is None) != (teacher_channels is None):
            raise ValueError(f"{self.name}: give both student_channels and teacher_channels, or neither")
        needs_align = student_channels is not None and any(
            s != t for s, t in per_level_channels(self.name, student_channels, teacher_channels)
        )
        self.align = ChannelAlign(self.name, student_channels, teacher_channels) if needs_align else None

    def aligned(self, student: FeatureLevels, teacher: FeatureLevels) -> tuple[list[Tensor], list[Tensor]]:
        """Validate shapes (channels aside), then map the student's channels to the teacher's."""
        s_levels, t_levels = feature_levels(self.name, student, teacher, check_channels=False,
                                            check_finite=self.check_finite)
        return (self.align(s_levels) if self.align is not None else s_levels), t_levels


class CWD(_FeatureLoss):
    """Channel-wise distillation (ICCV 2021, arXiv 2011.13256). See :func:`kdloss.functional.cwd`.

    ``loss(student, teacher)``: each side an ``(N, C, H, W)`` tensor or a sequence of them; returns
    ``loss_weight · Σ_levels tau²/(N·C) · Σ_{n,c} KL(softmax(t/tau) ‖ softmax(s/tau))`` (spatial softmax).
    With ``student_channels``/``teacher_channels`` (int or one per level) that differ, a learnable 1x1
    conv per level maps the student onto the teacher's channels first.
    """

    name = "CWD"

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0, student_channels: Channels | None = None,
                 teacher_channels: Channels | None = None, check_finite: bool = False, impl: str = "auto"):
        check_positive("CWD", "tau", tau)
        super().__init__(loss_weight, student_channels, teacher_channels, check_finite, impl)
        self.tau = float(tau)

    def forward(self, student: FeatureLevels, teacher: FeatureLevels) -> Tensor:
        s_levels, t_levels = self.aligned(student, teacher)
        return cwd(s_levels, t_levels, self.tau, impl=self.impl) * self.loss_weight

    def extra_repr(self) -> str:
        return f"tau={self.tau}, {super().extra_repr()}"


class Mimic(_FeatureLoss):
    """Feature mimicking: ``loss_weight · Σ_levels mean((s − t)²)``. See :func:`kdloss.functional.mimic`.

    Same calling convention and optional align convs as :class:`CWD`.
    """

    name = "Mimic"

    def __init__(self, loss_weight: float = 1.0, student_channels: Channels | None = None,
                 teacher_channels: Channels | None = None, check_finite: bool = False, impl: str = "auto"):
        super().__init__(loss_weight, student_channels, teacher_channels, check_finite, impl)

    def forward(self, student: FeatureLevels, teacher: FeatureLevels) -> Tensor:
        s_levels, t_levels = self.aligned(student, teacher)
        return mimic(s_levels, t_levels, impl=self.impl) * self.loss_weight


class PKD(_FeatureLoss):
    """Pearson-correlation distillation (NeurIPS 2022, arXiv 2207.02039). See :func:`kdloss.functional.pkd`.

    ``loss(student, teacher)`` returns ``loss_weight · Σ_levels mean((ŝ − t̂)²) / 2`` with each channel
    standardised over ``N·H·W``; scale-free, so teacher and student feature magnitudes may differ. Same
    calling convention and optional align convs as :class:`CWD`; ``resize_student`` resizes the student
    to the teacher's spatial size where they differ.
    """

    name = "PKD"

    def __init__(self, loss_weight: float = 1.0, student_channels: Channels | None = None,
                 teacher_channels: Channels | None = None, resize_student: bool = True, check_finite: bool = False,
                 impl: str = "auto"):
        super().__init__(loss_weight, student_channels, teacher_channels, check_finite, impl)
        self.resize_student = bool(resize_student)

    def aligned(self, student: FeatureLevels, teacher: FeatureLevels) -> tuple[list[Tensor], list[Tensor]]:
        s_levels, t_levels = as_level_list(student), as_level_list(teacher)
        return (self.align(s_levels) if self.align is not None else s_levels), t_levels

    def forward(self, student: FeatureLevels, teacher: FeatureLevels) -> Tensor:
        s_levels, t_levels = self.aligned(student, teacher)
        return pkd(s_levels, t_levels, resize_student=self.resize_student, impl=self.impl,
                   check_finite=self.check_finite) * self.loss_weight

    def extra_repr(self) -> str:
        return f"resize_student={self.resize_student}, {super().extra_repr()}"


def generation_block(channels: int) -> nn.Sequential:
    """MGD's generation network: conv3x3 → ReLU → conv3x3, ``channels`` in and out."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
    )


class MGD(DistillLoss):
    """Masked generative distillation (ECCV 2022, arXiv 2205.01529). See :func:`kdloss.functional.mgd`.

    ``loss(student, teacher, generator=None)``: each side an ``(N, C, H, W)`` tensor or a sequence of
    them (``student_channels`` / ``teacher_channels`` per level, an int for one level). Per level the
    student is aligned to the teacher's channels (1x1 conv where they differ), masked with
    ``M ~ Bernoulli(1 − lambda_mgd)`` of shape ``(N, 1, H, W)`` and passed through a learnable
    conv3x3 → ReLU → conv3x3 generator; returns
    ``loss_weight · Σ_levels alpha_mgd · Σ (G(align(s)·M) − t)² / N``.
    Pass a seeded ``torch.Generator`` as ``generator`` for reproducible masks.
    """

    def __init__(self, student_channels: Channels, teacher_channels: Channels, alpha_mgd: float = 2e-5,
                 lambda_mgd: float = 0.65, loss_weight: float = 1.0, check_finite: bool = False,
                 impl: str = "auto"):
        super().__init__(loss_weight, check_finite, impl)
        check_positive("MGD", "alpha_mgd", alpha_mgd)
        if not 0.0 <= lambda_mgd < 1.0:
            raise ValueError(f"MGD: lambda_mgd must be in [0, 1), got {lambda_mgd}")
        channels = per_level_channels("MGD", student_channels, teacher_channels)
        self.alpha_mgd = float(alpha_mgd)
        self.lambda_mgd = float(lambda_mgd)
        self.align = ChannelAlign("MGD", [s for s, _ in channels], [t for _, t in channels])
        self.generation = nn.ModuleList(generation_block(t) for _, t in channels)

    def forward(self, student: FeatureLevels, teacher: FeatureLevels,
                generator: torch.Generator | None = None) -> Tensor:
        s_levels, t_levels = feature_levels("MGD", as_level_list(student), as_level_list(teacher),
                                            check_channels=False, check_finite=self.check_finite)
        loss = mgd(self.align(s_levels), t_levels, list(self.generation), alpha_mgd=self.alpha_mgd,
                   lambda_mgd=self.lambda_mgd, generator=generator, impl=self.impl)
        return loss * self.loss_weight

    def extra_repr(self) -> str:
        return f"alpha_mgd={self.alpha_mgd}, lambda_mgd={self.lambda_mgd}, {super().extra_repr()}"
