"""The one table of the losses the ultralytics adapter offers: each loss's name, family, help, own keys,
progress-bar columns, default weight and builder. The config (``feature_loss``/``logit_loss`` choices and
help, default weights), the CLI help, ``distill()``'s docstring, the columns, the warnings for a loss's key
given without its loss, ``kdloss experiment``'s method names and the training-step benchmark's variants are
read from it; ``tests/test_loss_table.py`` checks docs/usage.md against it. Adding a loss is its core file and
one row here (and its tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdloss import BCKD, CWD, L1, L2, LD, MGD, PKD, CrossKD, DistillLoss, Mimic
from kdloss.adapters.ultralytics.sl2 import ScoreWeightedL2

if TYPE_CHECKING:
    from kdloss.adapters.ultralytics.config import DistillConfig


@dataclass(frozen=True)
class Channels:
    """Channels a loss is built for: the chosen layers' (student, teacher), one int per level, and CrossKD's
    head branches at the crossing point (student, teacher: box branches, then class branches)."""

    student: list[int] = field(default_factory=list)
    teacher: list[int] = field(default_factory=list)
    crossing: tuple[list[int], list[int]] = ([], [])


@dataclass(frozen=True)
class LossSpec:
    """One row of :data:`LOSSES`.

    ``columns`` maps the loss's part keys (``DistillationLoss`` keys: the loss's name, or ``name_part`` for a
    loss with several parts; ``o2o_...`` for YOLO26's one-to-one branch) to their column in the progress bar,
    ``results.csv`` and ``results.png``: at most 10 characters (ultralytics prints 11-character fields), with
    ``loss`` in the name (ultralytics plots those) and a ``kd`` prefix (YOLO26 has its own ``l1_loss``).
    """

    name: str
    family: str  # "feature" or "logit"
    help: str
    keys: tuple[str, ...]
    columns: dict[str, str]
    default_weight: float
    build: Callable[[DistillConfig, Channels], DistillLoss]


LOSSES: tuple[LossSpec, ...] = (
    LossSpec("cwd", "feature", "channel-wise distillation: KL of each channel's spatial softmax (ICCV 2021)",
             ("tau",), {"cwd": "kdcwd_loss"}, 1.0,
             lambda c, ch: CWD(tau=c.tau, student_channels=ch.student, teacher_channels=ch.teacher)),
    LossSpec("mgd", "feature", "masked generative distillation: the teacher's map generated from the masked "
             "student's (ECCV 2022)", ("alpha_mgd", "lambda_mgd"), {"mgd": "kdmgd_loss"}, 1.0,
             lambda c, ch: MGD(ch.student, ch.teacher, alpha_mgd=c.alpha_mgd, lambda_mgd=c.lambda_mgd)),
    # Mimic and PKD at weight 1 were worse than the baseline on every seed of the sweep on shapes, level with it at
    # 0.1 (docs/results.md, "The sweep that chose the defaults"); CWD and MGD were level at 1 and keep their scale.
    LossSpec("mimic", "feature", "feature mimicking: squared error of the aligned maps", (), {"mimic": "kdmim_loss"},
             0.1, lambda c, ch: Mimic(student_channels=ch.student, teacher_channels=ch.teacher)),
    LossSpec("pkd", "feature", "Pearson-correlation distillation: 1 - r of each channel (NeurIPS 2022)", (),
             {"pkd": "kdpkd_loss"}, 0.1, lambda c, ch: PKD(student_channels=ch.student, teacher_channels=ch.teacher)),
    # ultralytics' own feature term (adapters/ultralytics/sl2.py) at ultralytics' own weight, its `dis`
    LossSpec("sl2", "feature", "ultralytics' own distill_model feature term: projected neck maps, squared error "
             "weighted by the teacher's class scores", (), {"sl2": "kdsl2_loss"}, 6.0,
             lambda c, ch: ScoreWeightedL2(ch.student, ch.teacher)),
    LossSpec("l1", "logit", "mean absolute difference of all raw head outputs", (),
             {"l1": "kdl1_loss", "o2o_l1": "kdol1_loss"}, 1.0, lambda c, ch: L1()),
    LossSpec("l2", "logit", "mean squared difference of all raw head outputs", (),
             {"l2": "kdl2_loss", "o2o_l2": "kdol2_loss"}, 1.0, lambda c, ch: L2()),
    # BCKD at 0.5, not 1: with the 200-epoch teachers 0.5 was above 1 where the students trained 60 epochs
    # (+0.012 ± 0.007 mAP50-95 over 12 paired seeds, both datasets) and level at 30; pooled +0.009 ± 0.005 over 19
    # (docs/results.md, "Choosing BCKD's weight").
    LossSpec("bckd", "logit", "binary classification KD: soft-label class term and GIoU box term (ICCV 2023)",
             ("beta", "bckd_cls_weight", "bckd_box_weight"),
             {"bckd_cls": "kdcls_loss", "bckd_box": "kdbox_loss", "o2o_bckd_cls": "kdocl_loss",
              "o2o_bckd_box": "kdobx_loss"}, 0.5,
             lambda c, ch: BCKD(cls_weight=c.bckd_cls_weight, box_weight=c.bckd_box_weight, beta=c.beta)),
    LossSpec("ld", "logit", "localization distillation: KL of the box-side distributions (CVPR 2022)",
             ("ld_temperature",), {"ld": "kdld_loss", "o2o_ld": "kdold_loss"}, 1.0,
             lambda c, ch: LD(temperature=c.ld_temperature)),
    LossSpec("crosskd", "logit", "cross-head KD: the student's head features through the teacher's head "
             "(CVPR 2024)", ("crosskd_layer",), {"crosskd_cls": "kdxcl_loss", "crosskd_box": "kdxbx_loss"}, 1.0,
             lambda c, ch: CrossKD(*ch.crossing)),
)
BY_NAME = {spec.name: spec for spec in LOSSES}


def names(family: str) -> tuple[str, ...]:
    """The losses of ``family`` (``"feature"`` or ``"logit"``), in table order."""
    return tuple(spec.name for spec in LOSSES if spec.family == family)


def columns() -> dict[str, str]:
    """Every part key's column (:attr:`LossSpec.columns` of all losses)."""
    return {key: column for spec in LOSSES for key, column in spec.columns.items()}


def key_owners() -> dict[str, str]:
    """Each loss-specific key → the loss it belongs to (``tau`` → ``cwd``)."""
    return {key: spec.name for spec in LOSSES for key in spec.keys}


def choices_help(family: str) -> str:
    """``"cwd | mgd | ... | none"``, the choices of ``feature_loss`` or ``logit_loss``."""
    return " | ".join((*names(family), "none"))
