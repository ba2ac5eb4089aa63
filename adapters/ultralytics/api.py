"""``distill()``: ``YOLO(student).train(...)`` with a teacher and kdloss's losses."""

from __future__ import annotations

from pathlib import Path

from ultralytics import YOLO

from kdloss.adapters.ultralytics.trainer import DistillationTrainer


def distill(student: str | Path, teacher: str | Path | None = None, data: str | Path | None = None,
            feature_loss: str | None = None, logit_loss: str | None = None, **train_args):
    """Train ``student`` on ``data`` while distilling from ``teacher``; returns what ``YOLO.train`` returns.

    Args:
        student: a model yaml (``yolov8n.yaml``), a ``.pt`` checkpoint, or a checkpoint of a pruned model
            (trained as loaded, never rebuilt from yaml). To resume: the run's ``last.pt`` with ``resume=True``.
        teacher: a ``.pt`` checkpoint trained on the same classes (needed unless resuming).
        data: dataset yaml (needed unless resuming).
        feature_loss: ``cwd`` (default) | ``mgd`` | ``mimic`` | ``none``.
        logit_loss: ``bckd`` (default) | ``l1`` | ``l2`` | ``none``.
        **train_args: every ultralytics train argument (epochs, imgsz, batch, device, amp, resume, project,
            name, ...) and kdloss's keys (``feature_layers``, ``student_layers``/``teacher_layers``,
            ``feature_weight``, ``logit_weight``, ``schedule``, ``schedule_final_ratio``, ``schedule_warmup``,
            ``tau``, ``alpha_mgd``, ``lambda_mgd``, ``beta``; see :class:`DistillConfig`).
    """
    optional = {"distill_model": teacher, "data": data, "feature_loss": feature_loss, "logit_loss": logit_loss}
    train_args.update({key: str(value) for key, value in optional.items() if value is not None})
    if not train_args.get("resume") and ("distill_model" not in train_args or "data" not in train_args):
        raise ValueError("distill() needs teacher= and data= (unless resuming a run with resume=True)")
    return YOLO(str(student), task="detect").train(trainer=DistillationTrainer, **train_args)
