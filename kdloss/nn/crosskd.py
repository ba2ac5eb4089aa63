"""CrossKD as a module: align the student's intermediate head features, run the rest of the teacher's head
on them, and distill the teacher's predictions into those crossed predictions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from kdloss._checks import check_non_negative, check_positive
from kdloss.detection import DetectionOutput
from kdloss.functional.crosskd import crosskd_parts
from kdloss.nn.align import ChannelAlign, Channels
from kdloss.nn.base import DistillLoss

TeacherHeadTail = Callable[[list[Tensor]], DetectionOutput]


class CrossKD(DistillLoss):
    """Cross-head KD (CVPR 2024, arXiv 2306.11369). See :func:`kdloss.functional.crosskd_parts`.

    ``parts(student_feats, teacher, teacher_head_tail, avg_factor=None)``:

    - ``student_feats``: the student's head features at the crossing point, a list of ``(N, C_s[i], H_i, W_i)``
      tensors (any fixed order the detector chooses, e.g. the box branch of each level, then the class branch);
    - ``teacher``: the teacher's own :class:`kdloss.DetectionOutput` (no gradient needed);
    - ``teacher_head_tail``: a function that runs the teacher's remaining head layers (frozen, gradients
      flowing to their input) on the aligned list ``(N, C_t[i], H_i, W_i)`` and returns the crossed
      :class:`kdloss.DetectionOutput`.

    Where ``student_channels[i] != teacher_channels[i]`` a learnable 1x1 conv maps the student's feature
    onto the teacher's width (:class:`kdloss.ChannelAlign`). Returns ``{"cls", "box"}`` (each times
    ``loss_weight``); ``forward`` returns their sum. The student's own head outputs are not distilled: the
    paper's point is that the student's last layers learn from the labels alone.
    """

    part_names = ("cls", "box")

    def __init__(self, student_channels: Channels, teacher_channels: Channels, cls_weight: float = 1.0,
                 kl_weight: float = 3.0, giou_weight: float = 2.0, beta: float = 1.0, temperature: float = 1.0,
                 loss_weight: float = 1.0, check_finite: bool = False, impl: str = "auto"):
        super().__init__(loss_weight, check_finite, impl)
        check_positive("CrossKD", "beta", beta)
        check_positive("CrossKD", "temperature", temperature)
        for name, weight in (("cls_weight", cls_weight), ("kl_weight", kl_weight), ("giou_weight", giou_weight)):
            check_non_negative("CrossKD", name, weight)
        self.align = ChannelAlign("CrossKD", student_channels, teacher_channels)
        self.cls_weight, self.kl_weight, self.giou_weight = float(cls_weight), float(kl_weight), float(giou_weight)
        self.beta, self.temperature = float(beta), float(temperature)

    def parts(self, student_feats: Sequence[Tensor], teacher: DetectionOutput, teacher_head_tail: TeacherHeadTail,
              avg_factor: float | Tensor | None = None) -> dict[str, Tensor]:
        crossed = teacher_head_tail(self.align(list(student_feats)))
        if not isinstance(crossed, DetectionOutput):
            raise TypeError(f"CrossKD: teacher_head_tail must return a kdloss.DetectionOutput, got "
                            f"{type(crossed).__name__}")
        cls, box = crosskd_parts(crossed, teacher, cls_weight=self.cls_weight, kl_weight=self.kl_weight,
                                 giou_weight=self.giou_weight, beta=self.beta, temperature=self.temperature,
                                 avg_factor=avg_factor, impl=self.impl, check_finite=self.check_finite)
        return {"cls": cls * self.loss_weight, "box": box * self.loss_weight}

    def extra_repr(self) -> str:
        return (f"cls_weight={self.cls_weight}, kl_weight={self.kl_weight}, giou_weight={self.giou_weight}, "
                f"beta={self.beta}, temperature={self.temperature}, {super().extra_repr()}")
