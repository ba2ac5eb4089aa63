"""What the logit losses divide by in ultralytics training, read from the student's assigner in the same step."""

from __future__ import annotations

import torch
from torch import nn


class AssignerNormaliser:
    """Context manager that records, while the student's detection loss runs (no second assignment), what the
    logit losses divide by (``kind``, ``DistillConfig.avg_factor``): ``"target_scores"``,
    ``target_scores.sum().clamp(min=1)``, the normaliser of ultralytics' own cls, box and DFL losses; or
    ``"positives"``, the number of positive anchors ``fg_mask.sum().clamp(min=1)``, the official BCKD code's
    ``num_total_pos``. The two differ most early in training: an untrained student's boxes overlap the objects
    little, so its target scores are small (on four batches of the shapes data they summed to 1/140 of the positive
    anchors for an untrained yolov8n, 1/2 for the trained teacher: ``docs/evidence/avg-factor-probe.txt``).

    A forward hook on the criterion's ``TaskAlignedAssigner`` (of ``branch`` for end-to-end heads: the
    one-to-many branch, or the one-to-one branch that ``one2one=True`` also distills) is added on entry and
    removed on exit, so nothing stays on the student or in its checkpoints. ``value`` is ``None`` for a
    criterion without such an assigner (BCKD then uses its documented default).
    """

    def __init__(self, student: nn.Module, branch: str = "one2many", kind: str = "target_scores"):
        if getattr(student, "criterion", None) is None:
            student.criterion = student.init_criterion()
        criterion = student.criterion
        self.assigner = getattr(getattr(criterion, branch, criterion), "assigner", None)
        self.kind = kind
        self.value: torch.Tensor | None = None
        self._handle = None

    def _record(self, _module, _inputs, outputs) -> None:
        _labels, _bboxes, scores, fg_mask = outputs[:4]
        counted = scores if self.kind == "target_scores" else fg_mask.float()
        self.value = counted.detach().sum().clamp(min=1)

    def __enter__(self) -> AssignerNormaliser:
        if isinstance(self.assigner, nn.Module):
            self._handle = self.assigner.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
