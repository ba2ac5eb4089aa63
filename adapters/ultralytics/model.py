"""The student/teacher pair as ultralytics trains it: a ``DistillationModel`` with kdloss's losses.

Subclassing ultralytics' own ``DistillationModel`` keeps its contract: the frozen ``teacher_model``
(excluded from the EMA and stripped from checkpoints), the learnable ``projector`` (here: kdloss's
``DistillationLoss``, holding align convs and MGD generators) that the trainer optimises, saves and
restores, and checkpoints that strip to the plain student.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn
from ultralytics.nn.distill_model import DistillationModel, FeatureHook
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import LOGGER

from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.criterion import build_criterion, column_name
from kdloss.adapters.ultralytics.crosskd import CrossingPoints, check_crossing, teacher_head_tail
from kdloss.adapters.ultralytics.folding import fold_conv_bn
from kdloss.adapters.ultralytics.heads import detect_head, detection_output, output_branches
from kdloss.adapters.ultralytics.normaliser import AssignerNormaliser
from kdloss.adapters.ultralytics.pairs import check_pair, compared_logit_losses, resolve_layers
from kdloss.adapters.ultralytics.sl2 import teacher_location_scores
from kdloss.adapters.ultralytics.unlabeled import labeled_count, leading


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
        distillation term (:data:`kdloss.adapters.ultralytics.criterion.COLUMN_NAMES`: ``kdcwd_loss``,
        ``kdcls_loss``, ``kdbox_loss``, ...), which ultralytics shows as columns of the progress bar and
        results.csv, and plots in results.png (it plots columns named ``*loss*``).
        In eval mode, and once ``distilling`` is off, the distillation terms are zeros with the same keys.
        With unlabelled images after the labelled ones (``batch["labeled"]`` counts those,
        :mod:`kdloss.adapters.ultralytics.unlabeled`), the detection loss sees the labelled images only and the
        distillation losses all of them, their normaliser scaled by all / labelled; both are times the
        labelled count.
        """
        images = batch["img"]
        labeled = labeled_count(batch)  # unlabelled images, if any, follow the labelled ones (unlabeled=)
        if not self.training or not self.distilling:
            if preds is None:
                preds = self.student_model(images[:labeled])
            regular, items = self.student_model.loss(batch, leading(preds, labeled, images.shape[0]))
            zero = torch.zeros(1, device=batch["img"].device)
            items.update({column_name(key): zero[0] for key in self.projector.part_keys()})
            return torch.cat([regular, zero]), items

        self._teacher_feats.clear()
        self._student_feats.clear()
        with torch.no_grad():
            self._training_teacher()(images)
        if self.config.feature_loss == "none":  # only the head's output is read: free the teacher's neck maps now
            for level in range(len(self.teacher_feats_idx) - 1):
                self._teacher_feats.pop(level, None)
        with self._crossing(self.student_model) as crossing:
            preds = self.student_model(images)
        one2one = self.config.one2one
        kind = self.config.avg_factor
        with AssignerNormaliser(self.student_model, kind=kind) as normaliser, \
                AssignerNormaliser(self.student_model, "one2one", kind) if one2one else contextlib.nullcontext() as o2o:
            regular, items = self.student_model.loss(batch, leading(preds, labeled, images.shape[0]))
        # the assigner counted the labelled images; the logit losses sum over all, so their normaliser grows alike
        share = images.shape[0] / labeled
        avg_factor, o2o_avg_factor = (None if v is None else v * share
                                      for v in (normaliser.value, o2o.value if one2one else None))
        inputs = self._criterion_inputs(avg_factor, crossing.feats if crossing else None, o2o_avg_factor)
        total, parts = self.projector(inputs, progress=self.progress)
        items.update({column_name(key): value for key, value in parts.items()})
        self._teacher_feats.clear()
        self._student_feats.clear()
        return torch.cat([regular, (total * labeled).reshape(1).to(regular.dtype)]), items

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
