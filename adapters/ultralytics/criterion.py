"""kdloss's ``DistillationLoss`` for a config (each loss built by its row of the loss table), and the column
each of its terms gets."""

from __future__ import annotations

from kdloss import DistillationLoss, DistillLoss, Schedule
from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.losses import BY_NAME, Channels, columns
from kdloss.adapters.ultralytics.pairs import compared_logit_losses

# Column of each distillation term in the progress bar, results.csv and results.png (the loss table's).
COLUMN_NAMES = columns()


def column_name(part_key: str) -> str:
    """``DistillationLoss`` part key (``cwd``, ``bckd_cls``, ...) → its column (``kdcwd_loss``, ``kdcls_loss``)."""
    return COLUMN_NAMES.get(part_key, f"kd{part_key}_loss")


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
