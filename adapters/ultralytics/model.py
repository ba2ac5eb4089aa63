"""The student/teacher pair as ultralytics trains it: a ``DistillationModel`` with kdloss's losses.

Subclassing ultralytics' own ``DistillationModel`` keeps its contract: the frozen ``teacher_model``
(excluded from the EMA and stripped from checkpoints), the learnable ``projector`` (here: kdloss's
``DistillationLoss``, holding align convs and MGD generators) that the trainer optimises, saves and
restores, and checkpoints that strip to the plain student.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
from torch import nn
from ultralytics.nn.distill_model import DistillationModel, FeatureHook
from ultralytics.nn.modules import Conv, Conv2
from ultralytics.nn.modules.head import OBB, OBB26, Detect, Pose, Pose26, Segment, Segment26
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from kdloss import DistillationLoss, DistillLoss, Schedule
from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.crosskd import CrossingPoints, check_crossing, teacher_head_tail
from kdloss.adapters.ultralytics.heads import detect_head, detection_output, output_branches
from kdloss.adapters.ultralytics.losses import BY_NAME, Channels, columns
from kdloss.adapters.ultralytics.sl2 import teacher_location_scores


class KDDistillationModel(DistillationModel):
    """A student distilled from a frozen teacher with kdloss feature and/or logit losses.

    Args:
        teacher_model: checkpoint path or loaded DetectionModel.
        student_model: the DetectionModel being trained (built from yaml, loaded, or pruned), with ``args``.
        config: which losses, layers, weights and schedule.

    ``progress`` (0 → 1 over the run) drives the weight schedule; the trainer updates it every batch.
    ``distilling`` is switched off by the trainer for the last ``stop_epochs`` epochs (mmyolo's RTMDet
    distillation recipe stops at epoch 280 of 300, ``mmrazor.StopDistillHook``): then the teacher does not
    run and the distillation columns hold zeros.

    With ``config.fold_teacher`` (the default) the teacher's training-time forward runs on a copy with every
    Conv+BatchNorm folded into one conv (:func:`fold_conv_bn`), built at the first training step on the
    teacher's device and never pickled (so neither the EMA nor checkpoints carry it); ``teacher_model``
    itself, which ultralytics strips from checkpoints, stays as loaded, bit for bit.
    """

    def __init__(self, teacher_model: str | Path | nn.Module, student_model: nn.Module, config: DistillConfig):
        if isinstance(teacher_model, (str, Path)):
            teacher_model = load_checkpoint(teacher_model)[0]
        config.validate()  # checked when built; again here, in case a field was changed since
        check_pair(teacher_model, student_model, config)
        student_layers, teacher_layers = config.layers()
        s_layers = resolve_layers("student", student_model, student_layers)
        t_layers = resolve_layers("teacher", teacher_model, teacher_layers)
        if len(s_layers) != len(t_layers):
            raise ValueError(f"student_layers {s_layers} and teacher_layers {t_layers} differ in length")
        heads_inputs = list(detect_head(student_model).f), list(detect_head(teacher_model).f)
        if config.feature_loss == "sl2" and (s_layers, t_layers) != heads_inputs:
            raise ValueError(f"feature_loss=sl2 (ultralytics' own term) distills the maps that feed the Detect head, "
                             f"layers {heads_inputs[0]} (student) and {heads_inputs[1]} (teacher); got "
                             f"{s_layers} and {t_layers}: leave feature_layers unset")
        s_levels, t_levels = detect_head(student_model).nl, detect_head(teacher_model).nl
        if s_levels != t_levels:
            raise ValueError(f"teacher Detect head has {t_levels} levels, the student's {s_levels}: ultralytics' "
                             "DistillationModel needs the same count")
        crossing = "crosskd" in config.logit_losses()
        if crossing:
            check_crossing(detect_head(student_model), detect_head(teacher_model), config.crosskd_layer)
        super().__init__(teacher_model, student_model)
        self.config = config
        self.crossing = crossing
        self.progress = 0.0
        self.distilling = True
        self.feats_idx = [*s_layers, detect_head(student_model).i]
        self.teacher_feats_idx = [*t_layers, detect_head(self.teacher_model).i]
        self._register_feature_hooks()
        s_shapes, t_shapes, crossing_channels = self._probe_feature_shapes()
        for level, (s, t) in enumerate(zip(s_shapes, t_shapes)):
            if s[2:] != t[2:]:
                raise ValueError(
                    f"student layer {s_layers[level]} and teacher layer {t_layers[level]} give different spatial "
                    f"sizes: {tuple(s[2:])} vs {tuple(t[2:])} (shapes {tuple(s)} vs {tuple(t)})"
                )
        device = next(student_model.parameters()).device
        self.projector = build_criterion(config, [s[1] for s in s_shapes], [t[1] for t in t_shapes],
                                         crossing_channels).to(device)
        LOGGER.info(
            f"kdloss: distilling student layers {s_layers} from teacher layers {t_layers} with "
            f"feature_loss={config.feature_loss}, logit_loss={config.logit_loss}"
        )

    def _probe_feature_shapes(self) -> tuple[list[torch.Size], list[torch.Size], tuple[list[int], list[int]]]:
        """One dummy forward through both models to read each chosen layer's output shape, and the channels of
        the student's and the teacher's head branches at CrossKD's crossing point (empty lists without it)."""
        n = len(self.feats_idx) - 1
        imgsz = self.student_model.args.imgsz
        imgsz = imgsz if isinstance(imgsz, int) else max(imgsz)
        ch = self.student_model.yaml.get("channels", 3)
        device = next(self.student_model.parameters()).device
        was_training = self.student_model.training
        self.student_model.eval()
        with torch.no_grad(), self._crossing(self.teacher_model) as t_cross, \
                self._crossing(self.student_model) as s_cross:
            im = torch.zeros(1, ch, imgsz, imgsz, device=device)
            self.teacher_model(im)
            self.student_model(im)
        self.student_model.train(was_training)
        crossing_channels = ([f.shape[1] for f in s_cross.feats], [f.shape[1] for f in t_cross.feats]) \
            if self.crossing else ([], [])
        shapes = []
        for side, feats, layers in (("student", self._student_feats, self.feats_idx),
                                    ("teacher", self._teacher_feats, self.teacher_feats_idx)):
            side_shapes = []
            for level in range(n):
                out = feats[level]
                if not isinstance(out, torch.Tensor) or out.dim() != 4:
                    raise ValueError(f"{side} layer {layers[level]} ({type(out).__name__}) does not output an "
                                     "(N, C, H, W) feature map; choose neck layers such as the Detect head's inputs")
                side_shapes.append(out.shape)
            shapes.append(side_shapes)
        self._student_feats.clear()
        self._teacher_feats.clear()
        return shapes[0], shapes[1], crossing_channels

    def _crossing(self, model: nn.Module) -> CrossingPoints | contextlib.nullcontext:
        """Records ``model``'s head features at CrossKD's crossing point during a forward (``None`` without it)."""
        if not self.crossing:
            return contextlib.nullcontext()
        return CrossingPoints(detect_head(model), self.config.crosskd_layer)

    def loss(self, batch: dict, preds=None):
        """Detection loss of the student plus the distillation losses.

        Returns ``(loss_vector, loss_items)``: ``loss_vector`` is the student's ``[box, cls, dfl]`` times batch
        size followed by the distillation total times batch size; ``loss_items`` adds one detached entry per
        distillation term (:data:`COLUMN_NAMES`: ``kdcwd_loss``, ``kdcls_loss``, ``kdbox_loss``, ...), which
        ultralytics shows as columns of the progress bar and results.csv, and plots in results.png (it plots
        columns named ``*loss*``).
        In eval mode, and once ``distilling`` is off, the distillation terms are zeros with the same keys.
        """
        if not self.training or not self.distilling:
            if preds is None:
                preds = self.student_model(batch["img"])
            regular, items = self.student_model.loss(batch, preds)
            zero = torch.zeros(1, device=batch["img"].device)
            items.update({column_name(key): zero[0] for key in self.projector.part_keys()})
            return torch.cat([regular, zero]), items

        self._teacher_feats.clear()
        self._student_feats.clear()
        with torch.no_grad():
            self._training_teacher()(batch["img"])
        if self.config.feature_loss == "none":  # only the head's output is read: free the teacher's neck maps now
            for level in range(len(self.teacher_feats_idx) - 1):
                self._teacher_feats.pop(level, None)
        with self._crossing(self.student_model) as crossing:
            preds = self.student_model(batch["img"])
        one2one = self.config.one2one
        kind = self.config.avg_factor
        with AssignerNormaliser(self.student_model, kind=kind) as normaliser, \
                AssignerNormaliser(self.student_model, "one2one", kind) if one2one else contextlib.nullcontext() as o2o:
            regular, items = self.student_model.loss(batch, preds)
        inputs = self._criterion_inputs(normaliser.value, crossing.feats if crossing else None,
                                        o2o.value if one2one else None)
        total, parts = self.projector(inputs, progress=self.progress)
        items.update({column_name(key): value for key, value in parts.items()})
        self._teacher_feats.clear()
        self._student_feats.clear()
        return torch.cat([regular, (total * batch["img"].shape[0]).reshape(1).to(regular.dtype)]), items

    def _training_teacher(self) -> nn.Module:
        """The module that runs the teacher in training steps: ``teacher_model``, or its folded copy (built once
        per device, with the feature hooks on the same layers writing to the same dict)."""
        if not self.config.fold_teacher:
            return self.teacher_model
        device = next(self.teacher_model.parameters()).device
        folded = self.__dict__.get("_folded_teacher")
        if folded is None or next(folded.parameters()).device != device:
            self._teacher_feats.clear()
            folded = fold_conv_bn(self.teacher_model)
            for level, index in enumerate(self.teacher_feats_idx):
                folded.model[index].register_forward_hook(FeatureHook(self._teacher_feats, level))
            self.__dict__["_folded_teacher"] = folded  # a plain attribute: not a submodule, not in state_dict
        return folded

    def __getstate__(self):
        """Pickles (checkpoints, the EMA's deepcopy) leave the folded teacher out: it is rebuilt when needed."""
        state = super().__getstate__()
        state.pop("_folded_teacher", None)
        return state

    def _criterion_inputs(self, avg_factor: torch.Tensor | None = None, crossing_feats: list | None = None,
                          o2o_avg_factor: torch.Tensor | None = None) -> dict:
        """The projector's inputs; logit losses get ``avg_factor``, read from the student's assigner in this
        step (:class:`AssignerNormaliser`; BCKD, LD and CrossKD divide by it, L1/L2 ignore it). CrossKD gets the
        student's head features at the crossing point and the rest of the teacher's head. With ``one2one``,
        the ``o2o_*`` losses compare the one-to-one branches, normalised by that branch's own
        ``o2o_avg_factor``."""
        n = len(self.feats_idx) - 1
        inputs = {}
        t_head = detect_head(self.teacher_model)
        if self.config.feature_loss != "none":
            inputs[self.config.feature_loss] = (
                [self._student_feats[i] for i in range(n)],
                [self._teacher_feats[i] for i in range(n)],
            )
        if self.config.feature_loss == "sl2":  # weighted by the teacher's scores, both branches' as ultralytics'
            t_maps, t_out = inputs["sl2"][1], self._teacher_feats[n]
            scores = teacher_location_scores([detection_output(t_out, t_head, branch)
                                              for branch in output_branches(t_out)],
                                             [m.shape[2] * m.shape[3] for m in t_maps])
            inputs["sl2"] = (*inputs["sl2"], scores)
        if self.config.logit_loss == "none":
            return inputs
        teacher = detection_output(self._teacher_feats[n], t_head)
        compared = compared_logit_losses(self.config)
        if compared:
            s_head = detect_head(self.student_model)
            student = detection_output(self._student_feats[n], s_head)
            inputs.update(dict.fromkeys(compared, (student, teacher, avg_factor)))
            if self.config.one2one:
                # the student's one-to-one inputs are detached: only its own one-to-one convs learn from this
                pair = (detection_output(self._student_feats[n], s_head, "one2one"),
                        detection_output(self._teacher_feats[n], t_head, "one2one"), o2o_avg_factor)
                inputs.update({f"o2o_{name}": pair for name in compared})
        if self.crossing:
            inputs["crosskd"] = (crossing_feats, teacher, teacher_head_tail(t_head, self.config.crosskd_layer),
                                 avg_factor)
        return inputs


# Column of each distillation term in the progress bar, results.csv and results.png (the loss table's).
COLUMN_NAMES = columns()


def column_name(part_key: str) -> str:
    """``DistillationLoss`` part key (``cwd``, ``bckd_cls``, ...) → its column (``kdcwd_loss``, ``kdcls_loss``)."""
    return COLUMN_NAMES.get(part_key, f"kd{part_key}_loss")


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


def fold_conv_bn(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in which every ultralytics ``Conv`` (and ``DWConv``) has its BatchNorm folded
    into its conv (ultralytics' ``fuse_conv_and_bn``, what ``model.fuse()`` does to these layers) and runs
    ``forward_fuse``, without ``model``'s forward hooks. ``model`` itself is untouched. Unlike ``model.fuse()``
    it keeps both branches of end-to-end heads. Outputs match the unfolded eval-mode model up to float
    rounding (about 1e-4 on YOLOv8s)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._forward_hooks_with_kwargs,
                      module._forward_pre_hooks_with_kwargs, module._forward_hooks_always_called):
            hooks.clear()  # deepcopy copied them: hooks that record features would write to the teacher's dicts
        if isinstance(module, Conv) and hasattr(module, "bn"):
            if isinstance(module, Conv2) and hasattr(module, "cv2"):
                module.fuse_convs()
            module.conv = fuse_conv_and_bn(module.conv, module.bn)
            delattr(module, "bn")
            module.forward = module.forward_fuse
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded


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


def build_criterion(
    config: DistillConfig, student_channels: list[int], teacher_channels: list[int],
    crossing_channels: tuple[list[int], list[int]] = ([], []),
) -> DistillationLoss:
    """kdloss losses, weights and schedule for ``config``, each loss built by its row of the loss table
    (:data:`kdloss.adapters.ultralytics.losses.LOSSES`); the feature loss aligns channels per level, CrossKD
    per head branch (``crossing_channels``: student's and teacher's, box branches then class branches)."""
    channels = Channels(student_channels, teacher_channels, crossing_channels)
    losses: dict[str, DistillLoss] = {}
    weights: dict[str, float] = {}
    if config.feature_loss != "none":
        losses[config.feature_loss] = BY_NAME[config.feature_loss].build(config, channels)
        weights[config.feature_loss] = config.feature_loss_weight()
    for name in config.logit_losses():
        losses[name] = BY_NAME[name].build(config, channels)
        weights[name] = config.logit_loss_weight(name)
    if config.one2one:  # the same logit losses on end-to-end heads' one-to-one branches
        for name in compared_logit_losses(config):
            losses[f"o2o_{name}"] = BY_NAME[name].build(config, channels)
            weights[f"o2o_{name}"] = config.logit_loss_weight(name)
    if not losses:
        raise ValueError("feature_loss=none and logit_loss=none: nothing to distill")
    schedule = Schedule(config.schedule, final_ratio=config.schedule_final_ratio, warmup=config.schedule_warmup)
    return DistillationLoss(losses, weights=weights, schedules=dict.fromkeys(losses, schedule))
