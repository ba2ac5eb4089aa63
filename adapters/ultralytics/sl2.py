"""ultralytics' own feature distillation term (``distill_model=``'s) as a kdloss loss, so that it combines with
kdloss's logit losses in one run: ``feature_loss=sl2`` (``methods=bckd+sl2`` in ``kdloss experiment``).

ultralytics 8.4's ``DistillationModel`` (``ultralytics/nn/distill_model.py``: ``__init__`` builds the
projectors, ``loss`` the teacher scores, ``loss_sl2`` the term) distills the maps that feed the Detect head:
per level, the student's map goes through a learned projector (1×1 conv, ReLU, 1×1 conv to the teacher's
channels), and its squared error to the teacher's map is weighted at each location by the teacher's highest
class probability there, normalised by the weights' sum times the channels. The levels are summed and
scaled by ``dis`` (6.0). It is an adapter loss, not one of the core's: it needs the teacher's head outputs
next to its neck maps, and it has one (eager) implementation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdloss.detection import DetectionOutput
from kdloss.nn.base import DistillLoss


class ScoreWeightedL2(DistillLoss):
    """``loss(student_feats, teacher_feats, teacher_scores)``, summed over levels ``l``:
    ``Σ_{n,c,p} w[n,p] · (proj_l(s_l) − t_l)²[n,c,p] / (C_t · Σ_{n,p} w[n,p] + 1e-9)``.

    Args (per level, as lists): ``student_feats`` ``(B, C_s, H, W)``; ``teacher_feats`` ``(B, C_t, H, W)``;
    ``teacher_scores`` ``(B, 1, H·W)``, the teacher's highest class probability at each location
    (:func:`teacher_location_scores`). ``student_channels``/``teacher_channels``: one int per level.
    """

    name = "sl2"

    def __init__(self, student_channels: list[int], teacher_channels: list[int], loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if len(student_channels) != len(teacher_channels):
            raise ValueError(f"sl2: {len(student_channels)} student levels but {len(teacher_channels)} teacher levels")
        self.projectors = nn.ModuleList(
            nn.Sequential(nn.Conv2d(s, t, kernel_size=1), nn.ReLU(inplace=True), nn.Conv2d(t, t, kernel_size=1))
            for s, t in zip(student_channels, teacher_channels)
        )

    def forward(self, student_feats: list[Tensor], teacher_feats: list[Tensor], teacher_scores: list[Tensor]) -> Tensor:
        if not len(student_feats) == len(teacher_feats) == len(teacher_scores) == len(self.projectors):
            raise ValueError(f"sl2: expected {len(self.projectors)} levels of student maps, teacher maps and "
                             f"scores, got {len(student_feats)}, {len(teacher_feats)}, {len(teacher_scores)}")
        total = student_feats[0].new_zeros(())
        for level, (s, t, w) in enumerate(zip(student_feats, teacher_feats, teacher_scores)):
            projected = self.projectors[level](s)
            if projected.shape != t.shape or w.shape != (t.shape[0], 1, t.shape[2] * t.shape[3]):
                raise ValueError(f"sl2 level {level}: projected student {tuple(projected.shape)}, teacher "
                                 f"{tuple(t.shape)} and scores {tuple(w.shape)} do not match ((B, C, H, W) twice "
                                 "and (B, 1, H·W))")
            error = (projected.flatten(2) - t.flatten(2)).square()
            total = total + (error * w).sum() / (w.sum() * t.shape[1] + 1e-9)
        return total * self.loss_weight


def teacher_location_scores(teacher: list[DetectionOutput], level_sizes: list[int]) -> list[Tensor]:
    """Per level ``(B, 1, H·W)``: the teacher's highest class probability at each anchor, from its class logits
    averaged over the given branches first (ultralytics averages the one-to-many and one-to-one branches;
    heads with one branch give it twice, which changes nothing). ``level_sizes``: ``H·W`` per level."""
    logits = torch.stack([output.cls for output in teacher]).mean(0)  # (B, A, nc)
    if logits.shape[1] != sum(level_sizes):
        raise ValueError(f"sl2: the teacher's head has {logits.shape[1]} anchors, the maps {sum(level_sizes)} "
                         "locations: sl2 distills the maps that feed the Detect head (the default layers)")
    best = logits.sigmoid().amax(dim=2).unsqueeze(1)  # (B, 1, A)
    return list(torch.split(best, level_sizes, dim=2))
