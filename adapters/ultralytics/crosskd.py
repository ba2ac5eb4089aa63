"""CrossKD's crossing for ultralytics Detect heads: where the student's head features are taken, and the rest of
the teacher's head that runs on them.

Each level of a Detect head has a box branch ``cv2[i]`` and a class branch ``cv3[i]``, each three layers: conv,
conv, 1x1 conv (YOLO11/YOLO26 class branches: two depthwise-separable blocks, then the 1x1 conv). Crossing at
``layer`` takes the student's output of layer ``layer`` (1: after the first conv, the default; 2: after the
second) of every branch and runs the teacher's layers ``layer, layer + 1, ...`` of the same branch on it.
End-to-end heads (YOLO26) are crossed on their one-to-many branches, the ones kdloss's logit losses distill.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from ultralytics.nn.modules.head import Detect

from kdloss import DetectionOutput
from kdloss.adapters.ultralytics.heads import detection_output


def branches(head: Detect) -> list[nn.Sequential]:
    """The head's branches in CrossKD's feature order: the box branch of every level, then the class branch."""
    return [*head.cv2, *head.cv3]


def check_crossing(student_head: Detect, teacher_head: Detect, layer: int) -> None:
    """Both heads must have the same branch structure with a layer after the crossing point."""
    for side, head in (("student", student_head), ("teacher", teacher_head)):
        depths = sorted({len(branch) for branch in branches(head)})
        if not 1 <= layer < min(depths):
            raise ValueError(f"crosskd_layer={layer}: the {side}'s Detect branches have {depths} layers; cross "
                             f"after layer 1..{min(depths) - 1} (1: after the first conv)")
    s_depths = [len(branch) for branch in branches(student_head)]
    t_depths = [len(branch) for branch in branches(teacher_head)]
    if s_depths != t_depths:
        raise ValueError(f"logit_loss=crosskd runs the teacher's head on the student's head features, but their "
                         f"branches have {t_depths} (teacher) and {s_depths} (student) layers")


class CrossingPoints:
    """Context manager that records, during one forward of a model, each head branch's output at ``layer``
    (``feats``: a list, box branches then class branches). Its forward hooks are removed on exit, so nothing
    stays on the model or in its checkpoints."""

    def __init__(self, head: Detect, layer: int):
        self.modules = [branch[layer - 1] for branch in branches(head)]
        self.feats: list[Tensor | None] = [None] * len(self.modules)
        self._handles = []

    def __enter__(self) -> CrossingPoints:
        for index, module in enumerate(self.modules):
            self._handles.append(module.register_forward_hook(self._recorder(index)))
        return self

    def _recorder(self, index: int):
        def record(_module, _inputs, output) -> None:
            self.feats[index] = output

        return record

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def teacher_head_tail(head: Detect, layer: int):
    """A function ``(feats) -> DetectionOutput`` that runs the teacher's branch layers from ``layer`` on
    ``feats`` (the aligned student features in :func:`branches` order, ``(N, C_t, H_i, W_i)``) and maps the
    crossed predictions like the head's own (:func:`detection_output`). The teacher's parameters stay
    frozen; gradients flow through them to ``feats``."""
    tails = [branch[layer:] for branch in branches(head)]

    def run(feats: list[Tensor]) -> DetectionOutput:
        if len(feats) != len(tails):
            raise ValueError(f"CrossKD: {len(feats)} crossed features for {len(tails)} teacher head branches")
        outs = [tail(x) for tail, x in zip(tails, feats)]
        box, cls = outs[:head.nl], outs[head.nl:]
        batch = box[0].shape[0]
        preds = {"boxes": torch.cat([b.view(batch, 4 * head.reg_max, -1) for b in box], -1),
                 "scores": torch.cat([c.view(batch, head.nc, -1) for c in cls], -1),
                 "feats": box}
        return detection_output(preds, head)

    return run
