"""Which teacher/student pairs a config can distill, and the layers it reads: errors before training that would
otherwise surface as shape mismatches deep inside a loss."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.head import OBB, OBB26, Detect, Pose, Pose26, Segment, Segment26
from ultralytics.utils import LOGGER

from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.heads import detect_head


def check_pair(teacher: nn.Module, student: nn.Module, config: DistillConfig) -> None:
    """Errors that would otherwise surface as shape mismatches deep inside a loss."""
    s_head, t_head = detect_head(student), detect_head(teacher)
    for side, head in (("teacher", t_head), ("student", s_head)):
        if type(head) not in TASK_HEADS:
            raise ValueError(f"the {side} has a {type(head).__name__} head: kdloss distills YOLOv8/YOLO11/YOLO26 "
                             "detect, segment, pose and OBB models (Detect, Segment, Pose and OBB heads)")
    s_task, t_task = TASK_HEADS[type(s_head)], TASK_HEADS[type(t_head)]
    if s_task != t_task:
        raise ValueError(f"the teacher is a {t_task} model and the student a {s_task} model: distill between "
                         f"models of the same task (a {s_task} teacher trained on the same data)")
    if config.logit_loss == "none":
        return
    if config.one2one:
        for side, head in (("teacher", t_head), ("student", s_head)):
            if getattr(head, "one2one_cv2", None) is None:
                raise ValueError(f"one2one=True distills the one-to-one branch of end-to-end heads (YOLO26), but the "
                                 f"{side}'s {type(head).__name__} head has none: leave one2one=False")
    if s_head.nl != t_head.nl or not torch.equal(s_head.stride.cpu(), t_head.stride.cpu()):
        raise ValueError(f"teacher Detect levels (strides {t_head.stride.tolist()}) differ from the student's "
                         f"({s_head.stride.tolist()}): logit_loss={config.logit_loss} needs the same anchors")
    compared = "+".join(compared_logit_losses(config))
    if not compared:
        return  # CrossKD compares the teacher's head with itself: any classes, any box format
    if s_head.nc != t_head.nc:
        raise ValueError(f"teacher predicts {t_head.nc} classes but the student {s_head.nc}: logit_loss="
                         f"{compared} needs the same classes (train the teacher on the same data, or use "
                         "logit_loss=crosskd, which runs the teacher's own head)")
    if "ld" in config.logit_losses() and s_head.reg_max == 1:
        raise ValueError("logit_loss=ld distills box distributions, but these heads predict one value per side "
                         "(reg_max=1, e.g. YOLO26): use bckd or l2")
    if s_head.reg_max != t_head.reg_max:
        raise ValueError(f"teacher reg_max={t_head.reg_max} differs from the student's {s_head.reg_max} (YOLO26 "
                         f"heads predict one value per box side): logit_loss={compared} compares box "
                         "outputs bin by bin; feature losses and logit_loss=crosskd work across these heads")
    check_class_names(getattr(teacher, "names", None), getattr(student, "names", None), compared)


def compared_logit_losses(config: DistillConfig) -> list[str]:
    """The logit losses that compare the student's head outputs with the teacher's (all but CrossKD)."""
    return [name for name in config.logit_losses() if name != "crosskd"]


# The heads kdloss distills and their task. Their detection part (box branch cv2, class branch cv3) is what the
# logit losses and CrossKD use; mask coefficients, keypoints and angles are not distilled.
TASK_HEADS = {Detect: "detect", Segment: "segment", Segment26: "segment", Pose: "pose", Pose26: "pose",
              OBB: "obb", OBB26: "obb"}


def check_class_names(teacher_names: dict | None, student_names: dict | None, logit_loss: str) -> None:
    """Logit losses match class ``i`` of the teacher to class ``i`` of the student. The same names in another
    order are an error (each class would be distilled into a differently named one); other differing names a
    warning (e.g. a teacher saved without dataset names)."""
    if not isinstance(teacher_names, dict) or not isinstance(student_names, dict) or teacher_names == student_names:
        return
    differ = [i for i in sorted(student_names) if teacher_names.get(i) != student_names[i]]
    shown = ", ".join(f"{i}: {teacher_names.get(i)!r} vs {student_names[i]!r}" for i in differ[:3])
    if sorted(teacher_names.values()) == sorted(student_names.values()):
        raise ValueError(f"teacher and student (data) name the same classes in another order ({shown}, ...): "
                         f"logit_loss={logit_loss} would distill each class into another; train the teacher with "
                         "the data's class order, or use a feature loss only (logit_loss=none)")
    LOGGER.warning(f"kdloss: teacher class names differ from the data's ({shown}): logit_loss={logit_loss} "
                   "matches classes by index")


def resolve_layers(side: str, model: nn.Module, layers: list[int] | None) -> list[int]:
    """The chosen feature layers, defaulting to the Detect head's inputs; clear errors for bad indices."""
    head = detect_head(model)
    if layers is None:
        return list(head.f)
    count = len(model.model)
    for index in layers:
        if not 0 <= index < head.i:
            raise ValueError(f"{side} layer {index} is out of range: the {side} has layers 0..{count - 1} and its "
                             f"Detect head is layer {head.i}; choose layers before it (default {list(head.f)})")
    return list(layers)
