"""ultralytics' own trainers (detect, segment, pose, OBB) training a :class:`KDDistillationModel` instead of the
bare student: each task's loss columns, metrics and checkpoints stay ultralytics' own, kdloss's columns are
added."""

from __future__ import annotations

import time
from copy import copy, deepcopy

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.obb import OBBTrainer
from ultralytics.models.yolo.pose import PoseTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.heads import detect_head
from kdloss.adapters.ultralytics.model import KDDistillationModel
from kdloss.adapters.ultralytics.offline import use_local_fonts
from kdloss.adapters.ultralytics.preflight import check_run, drop_rows_after, remove_failed_run
from kdloss.adapters.ultralytics.recipe import start_note
from kdloss.adapters.ultralytics.unlabeled import CycledBatches, append_unlabeled, unlabeled_images, unlabeled_loader


class AsLoadedMixin:
    """Trains a student loaded from a checkpoint as it is. ultralytics rebuilds a ``.pt`` model from its yaml and
    copies the weights that fit, which silently turns a pruned model back into the full one. Fonts are looked up
    on this machine only (:func:`use_local_fonts`: ultralytics' dataset check would download one)."""

    def __init__(self, *args, **kwargs):
        use_local_fonts()
        super().__init__(*args, **kwargs)

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        """A student loaded from a checkpoint is trained as it is (pruned channels included)."""
        if weights is not None and fits_the_data(weights, self.data):
            model = deepcopy(weights).float()
            for p in model.parameters():
                p.requires_grad_(True)
            if verbose and RANK in {-1, 0}:
                count = sum(p.numel() for p in model.parameters())
                LOGGER.info(f"kdloss: training the loaded model as it is ({count:,} parameters)")
            return self.set_model_names_for_load(model)
        if weights is not None and not _matches_its_yaml(weights):
            raise ValueError(f"the student checkpoint predicts {detect_head(weights).nc} classes, the data "
                             f"{self.data['nc']}, and its layers no longer match its yaml (pruned?): ultralytics "
                             "would rebuild it from the yaml and lose them. Fine-tune it on data with its classes.")
        return super().get_model(cfg=cfg, weights=weights, verbose=verbose)


class AsLoadedTrainer(AsLoadedMixin, DetectionTrainer):
    """ultralytics' detection trainer, loaded models trained as they are: plain fine-tuning (and ultralytics'
    own ``distill_model=`` distillation) of a pruned student, as ``kdloss experiment`` runs ``none`` and
    ``builtin``. For a model built from yaml it is ultralytics' trainer unchanged."""


class AsLoadedSegmentationTrainer(AsLoadedMixin, SegmentationTrainer):
    """:class:`AsLoadedTrainer` for segment models."""


class AsLoadedPoseTrainer(AsLoadedMixin, PoseTrainer):
    """:class:`AsLoadedTrainer` for pose models."""


class AsLoadedOBBTrainer(AsLoadedMixin, OBBTrainer):
    """:class:`AsLoadedTrainer` for OBB models."""


def as_loaded_trainer(task: str) -> type:
    """ultralytics' trainer for ``task`` that trains a loaded model as it is (``none`` and ``builtin`` in
    ``kdloss experiment``, so that they start from the student exactly as kdloss's methods do)."""
    trainers = {"detect": AsLoadedTrainer, "segment": AsLoadedSegmentationTrainer, "pose": AsLoadedPoseTrainer,
                "obb": AsLoadedOBBTrainer}
    if task not in trainers:
        raise ValueError(f"kdloss experiment runs detect, segment, pose and obb models; this one is {task!r}")
    return trainers[task]


class DistillationMixin(AsLoadedMixin):
    """What kdloss adds to an ultralytics task trainer (mixed in before it, see :class:`DistillationTrainer`).

    kdloss's keys (:class:`DistillConfig`) are taken out of the overrides before ultralytics validates them
    and set back on ``self.args`` so that checkpoints and the DDP launch script carry them. A loaded or
    pruned student is trained as it is, never rebuilt from its yaml.
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks=None):
        overrides = dict(overrides or {})
        if "teacher" in overrides:
            teacher = overrides.pop("teacher")
            if overrides.get("distill_model") not in (None, teacher):
                raise ValueError("give the teacher once: teacher= and distill_model= differ")
            overrides["distill_model"] = teacher
        given = {key: overrides[key] for key in DistillConfig.keys() if key in overrides}
        config = DistillConfig.pop_from(overrides)
        resumed_epochs = check_run(overrides, config, set(given))  # one-line errors before the run's folder
        if not overrides.get("resume") and RANK == -1:  # what the default does for this start, once per run
            LOGGER.info(start_note(overrides.get("model"), config.unlabeled))
        self._started = time.time()
        try:
            super().__init__(cfg, overrides, _callbacks)
        except BaseException:
            if not overrides.get("resume"):
                remove_failed_run(getattr(self, "save_dir", None), self._started)
            raise
        if self.resume and resumed_epochs is not None:
            drop_rows_after(self.csv, resumed_epochs)  # an epoch logged but not checkpointed is trained again
        if self.resume:  # the checkpoint's settings win, as for every other ultralytics argument
            saved = {key: getattr(self.args, key) for key in DistillConfig.keys() if hasattr(self.args, key)}
            resumed = DistillConfig.from_dict(saved)  # a key the checkpoint predates takes its default
            changed = [key for key in given if getattr(resumed, key) != getattr(config, key)]
            if changed:
                LOGGER.warning(f"kdloss: resume keeps the checkpoint's {changed}; start a new run to change them")
            config = resumed
        if not self.args.distill_model:
            raise ValueError("no teacher: pass teacher=path/to/teacher.pt (or distill_model=...)")
        self.distill_config = config
        for key, value in config.as_dict().items():
            setattr(self.args, key, value)
        self.add_callback("on_train_epoch_start", _reset_batch_counter)
        self.add_callback("on_train_batch_start", _update_progress)

    def train(self):
        """ultralytics' training; a new run that fails before its first checkpoint leaves no run folder behind."""
        try:
            return super().train()
        except BaseException:
            if not self.resume:
                remove_failed_run(self.save_dir, self._started)
            raise

    def setup_model(self):
        """On resume, rebuild the kdloss model from the checkpoint (student as saved, trained projector)."""
        if self.resume and str(self.model).endswith(".pt"):
            weights, ckpt = load_checkpoint(self.model)
            if isinstance(weights, KDDistillationModel):
                student = self.get_model(weights=weights.student_model, verbose=RANK in {-1, 0})
                student.args = self.args
                teacher = weights.teacher_model if weights.teacher_model is not None else self.args.distill_model
                model = KDDistillationModel(teacher, student, self.distill_config)
                model.projector.load_state_dict(weights.projector.state_dict())
                model.criterion = None
                self.model = model
                return ckpt
        return super().setup_model()

    def _build_train_pipeline(self):
        """ultralytics' loaders, and with ``unlabeled=`` a train loader of those images (augmented as the
        labelled ones; their labels, if any, are never read)."""
        super()._build_train_pipeline()
        path = self.distill_config.unlabeled and unlabeled_images(self.distill_config.unlabeled, self.data)
        if path:
            batch = (self.distill_config.unlabeled_batch or self.batch_size) // max(self.world_size, 1)
            loader = unlabeled_loader(self, path, max(batch, 1))
            self.unlabeled_batches = CycledBatches(loader)
            if RANK in {-1, 0}:
                LOGGER.info(f"kdloss: {len(loader.dataset)} unlabelled images from {path}, {max(batch, 1)} a step "
                            "beside the labelled batch: distilled from the teacher, never in the detection loss")

    def _close_dataloader_mosaic(self):
        """ultralytics' close_mosaic epochs for the unlabelled images too."""
        super()._close_dataloader_mosaic()
        batches = getattr(self, "unlabeled_batches", None)
        if batches is not None:
            dataset = batches.loader.dataset
            if hasattr(dataset, "close_mosaic"):
                dataset.close_mosaic(hyp=copy(self.args))
            batches.loader.reset()
            batches.restart()

    def preprocess_batch(self, batch: dict) -> dict:
        """The task's preprocessing; while distilling with ``unlabeled=``, a batch of unlabelled images after
        the labelled ones (:func:`append_unlabeled`)."""
        batch = super().preprocess_batch(batch)
        batches = getattr(self, "unlabeled_batches", None)
        model = unwrap_model(self.model)
        if batches is None or not model.training or not getattr(model, "distilling", False):
            return batch
        return append_unlabeled(batch, super().preprocess_batch(next(batches)))

    def get_validator(self):
        """The task's own validator, given the args without kdloss's keys (ultralytics re-validates them)."""
        saved = {key: self.args.__dict__.pop(key) for key in DistillConfig.keys() if key in self.args.__dict__}
        try:
            return super().get_validator()
        finally:
            self.args.__dict__.update(saved)

    def set_model_attributes(self):
        """The task's attributes (names, nc, args; keypoint shape for pose) on the student, then wrap it with the
        teacher (once)."""
        model = self.model
        student = model.student_model if isinstance(model, KDDistillationModel) else model
        self.model = student
        try:
            super().set_model_attributes()
        finally:
            self.model = model
        model.nc, model.names, model.args = self.data["nc"], self.data["names"], self.args
        if not isinstance(model, KDDistillationModel):
            self.model = KDDistillationModel(self.args.distill_model, student, self.distill_config)


class DistillationTrainer(DistillationMixin, DetectionTrainer):
    """Detection: ``model.train(trainer=DistillationTrainer, teacher="teacher.pt", feature_loss="cwd", ...)``."""


class SegmentationDistillationTrainer(DistillationMixin, SegmentationTrainer):
    """Instance segmentation: ultralytics' SegmentationTrainer (mask losses and mask mAP) plus kdloss."""


class PoseDistillationTrainer(DistillationMixin, PoseTrainer):
    """Pose: ultralytics' PoseTrainer (keypoint losses and pose mAP) plus kdloss."""


class OBBDistillationTrainer(DistillationMixin, OBBTrainer):
    """Oriented boxes: ultralytics' OBBTrainer (rotated-box losses and mAP) plus kdloss."""


def distillation_trainer(task: str) -> type:
    """The kdloss trainer for an ultralytics task name (``model.task``)."""
    trainers = {"detect": DistillationTrainer, "segment": SegmentationDistillationTrainer,
                "pose": PoseDistillationTrainer, "obb": OBBDistillationTrainer}
    if task not in trainers:
        raise ValueError(f"kdloss distills detect, segment, pose and obb models; this student's task is {task!r}")
    return trainers[task]


def fits_the_data(weights, data: dict) -> bool:
    """Whether a loaded model can be trained on ``data`` as it is: the same class count, input channels and,
    for pose heads, keypoint shape (else ultralytics rebuilds it for the data and copies what fits)."""
    head = detect_head(weights)
    kpt_shape = getattr(head, "kpt_shape", None)
    return (head.nc == data["nc"] and weights.yaml.get("channels", 3) == data.get("channels", 3)
            and (kpt_shape is None or list(kpt_shape) == list(data.get("kpt_shape") or [])))


def _matches_its_yaml(weights) -> bool:
    """Whether every tensor of ``weights`` has the shape its yaml builds (false for pruned models)."""
    reference = type(weights)(deepcopy(weights.yaml), nc=detect_head(weights).nc, verbose=False).state_dict()
    return all(k in reference and reference[k].shape == v.shape for k, v in weights.state_dict().items())


def _reset_batch_counter(trainer) -> None:
    trainer._kd_batch = 0


def _update_progress(trainer) -> None:
    """Schedule position: (epoch + batch / batches) / epochs, so resume continues where it stopped; and
    distillation off for the last ``stop_epochs`` epochs."""
    batches = max(len(trainer.train_loader), 1)
    i = getattr(trainer, "_kd_batch", 0)
    model = unwrap_model(trainer.model)
    model.progress = min((trainer.epoch + i / batches) / max(trainer.epochs, 1), 1.0)
    model.distilling = trainer.epoch < trainer.epochs - trainer.distill_config.stop_epochs
    trainer._kd_batch = i + 1
