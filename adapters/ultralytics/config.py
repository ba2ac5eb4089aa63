"""The distillation settings kdloss adds to an ultralytics training run, parsed from train kwargs.

ultralytics rejects keys it does not know, so the trainer takes these out of the overrides before
ultralytics sees them (``DistillConfig.pop_from``) and puts them back on ``trainer.args`` afterwards,
where checkpoints (for ``resume``) and the multi-GPU launch script (which rebuilds the trainer from
``vars(trainer.args)``) carry them.
"""

from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, field, fields

from kdloss.adapters.ultralytics.losses import BY_NAME, choices_help, names
from kdloss.schedules import SCHEDULE_KINDS

FEATURE_LOSSES = (*names("feature"), "none")
LOGIT_LOSSES = (*names("logit"), "none")
# feature_weight and logit_weight when none is given: each loss's own default (the table's, with the sweep's
# reasons: BCKD 0.5, Mimic and PKD 0.1, sl2 ultralytics' 6, the others 1).
DEFAULT_FEATURE_WEIGHTS = {name: BY_NAME[name].default_weight for name in names("feature")}
DEFAULT_LOGIT_WEIGHTS = {name: BY_NAME[name].default_weight for name in names("logit")}
# What BCKD, LD and CrossKD divide by in ultralytics training (their avg_factor), read from the student's
# assigner in the same step: ultralytics' own target_scores_sum (what its cls/box/DFL losses divide by), or the
# count of positive anchors (what the official BCKD code divides by, num_total_pos).
AVG_FACTORS = ("target_scores", "positives")


@dataclass
class DistillConfig:
    """kdloss's keys for ``model.train(...)`` / ``kdloss distill key=value``.

    The teacher itself is ultralytics' own ``distill_model`` key (``teacher=`` is accepted as its alias).
    """

    feature_loss: str = field(default="none", metadata={"help": choices_help("feature")})
    logit_loss: str = field(default="bckd", metadata={"help": choices_help("logit") + ", or several: bckd+ld"})
    feature_layers: list[int] | None = field(
        default=None, metadata={"help": "layer indices in both models (default: the Detect head's inputs)"})
    student_layers: list[int] | None = field(default=None, metadata={"help": "or: student layer indices"})
    teacher_layers: list[int] | None = field(default=None, metadata={"help": "   with teacher layer indices"})
    feature_weight: float | None = field(
        default=None,
        metadata={"help": "weight of the feature loss (default: " + ", ".join(
            f"{name} {weight:g}" for name, weight in DEFAULT_FEATURE_WEIGHTS.items()) + ")"})
    logit_weight: float | None = field(
        default=None, metadata={"help": "weight of each logit loss (default: " + ", ".join(
            f"{name} {weight:g}" for name, weight in DEFAULT_LOGIT_WEIGHTS.items()) + ")"})
    schedule: str = field(default="constant", metadata={"help": "constant | linear | cosine weight schedule"})
    schedule_final_ratio: float = field(default=0.1, metadata={"help": "linear/cosine: weight ratio at the end"})
    schedule_warmup: float = field(default=0.0, metadata={"help": "fraction of the run ramping weights from 0"})
    tau: float = field(default=1.0, metadata={"help": "CWD softmax temperature"})
    ld_temperature: float = field(default=10.0, metadata={"help": "LD softmax temperature"})
    alpha_mgd: float = field(default=2e-5, metadata={"help": "MGD loss scale"})
    lambda_mgd: float = field(default=0.65, metadata={"help": "MGD masking probability"})
    beta: float = field(default=1.0, metadata={"help": "BCKD exponent of |p_t - p_s|"})
    bckd_cls_weight: float = field(default=1.0, metadata={"help": "BCKD: weight of its class term within it"})
    bckd_box_weight: float = field(default=4.0, metadata={"help": "BCKD: weight of its box term within it"})
    avg_factor: str = field(default="target_scores", metadata={
        "help": "bckd/ld/crosskd divide by: target_scores (ultralytics' sum) | positives (official BCKD's count)"})
    stop_epochs: int = field(default=0, metadata={"help": "train the last N epochs without distillation"})
    crosskd_layer: int = field(default=1, metadata={"help": "CrossKD: cross after this layer of each head branch"})
    fold_teacher: bool = field(default=True, metadata={
        "help": "run the teacher's training forward on a Conv+BN-folded copy (faster; False: as loaded)"})
    one2one: bool = field(default=False, metadata={
        "help": "YOLO26 end-to-end heads: also distill the one-to-one branch (inference's) with the logit loss"})
    unlabeled: str | None = field(default=None, metadata={
        "help": "a folder (or .txt list) of unlabelled images, or train (the data's own training images again): "
                "each step adds a batch of them, distilled only"})
    unlabeled_batch: int = field(default=0, metadata={"help": "unlabelled images per step (0: as batch)"})

    def __post_init__(self) -> None:
        self.validate()  # a bad value fails where the config is built, whoever builds it

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def pop_from(cls, overrides: dict) -> DistillConfig:
        """Take kdloss's keys out of ``overrides`` (in place) and return them validated."""
        return cls.from_dict({key: overrides.pop(key) for key in cls.keys() if key in overrides})

    @classmethod
    def from_dict(cls, values: dict) -> DistillConfig:
        """Build from parsed or raw (CLI string) values; raise ``ValueError`` naming the bad key."""
        return cls(**{key: _parse(key, value) for key, value in values.items()})

    def as_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss={self.feature_loss!r} is not one of {FEATURE_LOSSES}")
        parts = self.logit_losses()
        if (self.logit_loss != "none" and ("none" in parts or not parts)) or len(set(parts)) != len(parts) or \
                any(part not in LOGIT_LOSSES for part in parts):
            raise ValueError(f"logit_loss={self.logit_loss!r} is not one of {LOGIT_LOSSES} or several of them "
                             "joined by '+' (bckd+ld)")
        if self.avg_factor not in AVG_FACTORS:
            raise ValueError(f"avg_factor={self.avg_factor!r} is not one of {AVG_FACTORS}")
        if self.schedule not in SCHEDULE_KINDS:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULE_KINDS}")
        if self.feature_layers is not None and (self.student_layers is not None or self.teacher_layers is not None):
            raise ValueError("give feature_layers, or student_layers and teacher_layers, not both")
        if (self.student_layers is None) != (self.teacher_layers is None):
            raise ValueError("student_layers and teacher_layers go together: give both, or feature_layers")
        for key in ("feature_weight", "logit_weight", "schedule_final_ratio", "bckd_cls_weight", "bckd_box_weight"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value}")
        for key in ("tau", "alpha_mgd", "beta", "ld_temperature"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"{key} must be a finite number, got {getattr(self, key)}")
        if not 0 <= self.lambda_mgd < 1:
            raise ValueError(f"lambda_mgd must be in [0, 1), got {self.lambda_mgd}")
        if self.crosskd_layer < 1:
            raise ValueError(f"crosskd_layer must be >= 1 (1: after the first conv), got {self.crosskd_layer}")
        if self.stop_epochs < 0:
            raise ValueError(f"stop_epochs must be >= 0, got {self.stop_epochs}")
        if self.unlabeled_batch < 0:
            raise ValueError(f"unlabeled_batch must be >= 0 (0: as batch), got {self.unlabeled_batch}")
        if self.unlabeled_batch and not self.unlabeled:
            raise ValueError(f"unlabeled_batch={self.unlabeled_batch} needs unlabeled=folder of images")
        if not 0 <= self.schedule_warmup < 1:
            raise ValueError(f"schedule_warmup must be in [0, 1), got {self.schedule_warmup}")
        if self.one2one and not [name for name in parts if name != "crosskd"]:
            raise ValueError(f"one2one=True distills the one-to-one branch with bckd, ld, l1 or l2, but logit_loss="
                             f"{self.logit_loss}: add one of them (logit_loss=bckd)")

    def feature_loss_weight(self) -> float:
        """``feature_weight``, or the feature loss's default (:data:`DEFAULT_FEATURE_WEIGHTS`) when not given."""
        if self.feature_weight is None:
            return DEFAULT_FEATURE_WEIGHTS.get(self.feature_loss, 1.0)
        return self.feature_weight

    def logit_loss_weight(self, name: str) -> float:
        """``logit_weight``, or the logit loss's default (:data:`DEFAULT_LOGIT_WEIGHTS`) when not given.

        ``name`` is one of :data:`LOGIT_LOSSES`; a YOLO26 one-to-one branch's loss (``o2o_bckd``) weighs as its
        one-to-many twin.
        """
        if self.logit_weight is None:
            return DEFAULT_LOGIT_WEIGHTS.get(name.removeprefix("o2o_"), 1.0)
        return self.logit_weight

    def logit_losses(self) -> list[str]:
        """``"bckd+ld"`` → ``["bckd", "ld"]``; ``"none"`` → ``[]``."""
        return [] if self.logit_loss == "none" else self.logit_loss.split("+")

    def layers(self) -> tuple[list[int] | None, list[int] | None]:
        """(student layers, teacher layers); ``None`` means the Detect head's inputs of that model."""
        if self.feature_layers is not None:
            return self.feature_layers, self.feature_layers
        return self.student_layers, self.teacher_layers


def _parse(key: str, value):
    kind = {f.name: f.type for f in fields(DistillConfig)}[key]
    if isinstance(value, str) and "list" in kind:
        value = value.strip()
        if value.lower() in {"", "none", "null"}:
            return None
        try:
            value = ast.literal_eval(value if value.startswith(("[", "(")) else f"[{value}]")
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{key}={value!r}: expected layer indices like 15,18,21") from e
    if "list" in kind:
        if value is None:
            return None
        if isinstance(value, int):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, int) for v in value):
            raise ValueError(f"{key}={value!r}: expected a non-empty list of layer indices like [15, 18, 21]")
        return [int(v) for v in value]
    if kind == "int":
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{key}={value!r}: expected a whole number") from e
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in {"true", "false", "1", "0"}:
            raise ValueError(f"{key}={value!r}: expected True or False")
        return text in {"true", "1"}
    if kind.startswith("float"):
        if value is None or (kind.endswith("None") and str(value).strip().lower() in {"none", "null", ""}):
            return None
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{key}={value!r}: expected a number") from e
    if kind == "str | None":  # a path: kept as given
        return None if value is None or str(value).strip().lower() in {"none", "null", ""} else str(value)
    return str(value).lower()
