"""Logit-distillation modules over :class:`kdloss.DetectionOutput` head outputs."""

from __future__ import annotations

from torch import Tensor

from kdloss._checks import check_non_negative, check_positive
from kdloss.detection import DetectionOutput
from kdloss.functional.bckd import bckd_parts
from kdloss.functional.ld import ld
from kdloss.functional.logit import l1, l2
from kdloss.nn.base import DistillLoss


class L1(DistillLoss):
    """``loss_weight ·`` mean absolute difference of all raw head outputs. See :func:`kdloss.functional.l1`.

    ``loss(student, teacher, avg_factor=None)`` with :class:`kdloss.DetectionOutput` sides
    (``avg_factor`` is accepted for a uniform interface and ignored: the normaliser is the element count).
    """

    def forward(self, student: DetectionOutput, teacher: DetectionOutput, avg_factor: float | None = None) -> Tensor:
        return l1(student, teacher, impl=self.impl, check_finite=self.check_finite) * self.loss_weight


class L2(DistillLoss):
    """``loss_weight ·`` mean squared difference of all raw head outputs. See :func:`kdloss.functional.l2`."""

    def forward(self, student: DetectionOutput, teacher: DetectionOutput, avg_factor: float | None = None) -> Tensor:
        return l2(student, teacher, impl=self.impl, check_finite=self.check_finite) * self.loss_weight


class BCKD(DistillLoss):
    """Binary classification KD (ICCV 2023, arXiv 2308.14286). See :func:`kdloss.functional.bckd_parts`.

    ``loss(student, teacher, avg_factor=None)`` returns ``loss_weight · (cls + box)``;
    ``parts(...)`` returns ``{"cls": ..., "box": ...}`` (each times ``loss_weight``) for logging.
    """

    part_names = ("cls", "box")

    def __init__(self, cls_weight: float = 1.0, box_weight: float = 4.0, beta: float = 1.0,
                 loss_weight: float = 1.0, check_finite: bool = False, impl: str = "auto"):
        super().__init__(loss_weight, check_finite, impl)
        check_positive("BCKD", "beta", beta)
        check_non_negative("BCKD", "cls_weight", cls_weight)
        check_non_negative("BCKD", "box_weight", box_weight)
        self.cls_weight, self.box_weight, self.beta = float(cls_weight), float(box_weight), float(beta)

    def parts(self, student: DetectionOutput, teacher: DetectionOutput,
              avg_factor: float | Tensor | None = None) -> dict[str, Tensor]:
        cls, box = bckd_parts(student, teacher, cls_weight=self.cls_weight, box_weight=self.box_weight,
                              beta=self.beta, avg_factor=avg_factor, impl=self.impl,
                              check_finite=self.check_finite)
        return {"cls": cls * self.loss_weight, "box": box * self.loss_weight}

    def extra_repr(self) -> str:
        return f"cls_weight={self.cls_weight}, box_weight={self.box_weight}, beta={self.beta}, {super().extra_repr()}"


class LD(DistillLoss):
    """Localization distillation (CVPR 2022, arXiv 2102.12252). See :func:`kdloss.functional.ld`.

    ``loss(student, teacher, avg_factor=None)`` returns ``loss_weight ·`` the temperature-softened KL of the
    DFL box distributions, weighted per anchor by the teacher's class confidence. Combine it with BCKD's
    class term as ``DistillationLoss({"bckd": BCKD(box_weight=0), "ld": LD()})`` or keep both box terms.
    """

    def __init__(self, temperature: float = 10.0, loss_weight: float = 1.0, check_finite: bool = False,
                 impl: str = "auto"):
        super().__init__(loss_weight, check_finite, impl)
        check_positive("LD", "temperature", temperature)
        self.temperature = float(temperature)

    def forward(self, student: DetectionOutput, teacher: DetectionOutput,
                avg_factor: float | Tensor | None = None) -> Tensor:
        return ld(student, teacher, temperature=self.temperature, avg_factor=avg_factor, impl=self.impl,
                  check_finite=self.check_finite) * self.loss_weight

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, {super().extra_repr()}"
