"""``distill()``: ``YOLO(student).train(...)`` with a teacher and kdloss's losses."""

from __future__ import annotations

from pathlib import Path

from ultralytics import YOLO

from kdloss.adapters.ultralytics.trainer import DistillationTrainer


def distill(student: str | Path, teacher: str | Path, data: str | Path, feature_loss: str = "cwd",
            logit_loss: str = "bckd", **train_args):
    """Train ``student`` on ``data`` while distilling from ``teacher``; returns what ``YOLO.train`` returns.

    Args:
        student: a model yaml (``yolov8n.yaml``), a ``.pt`` checkpoint, or a checkpoint of a pruned model
            (trained as loaded, never rebuilt from yaml).
        teacher: a ``.pt`` checkpoint trained on the same classes (for logit losses).
        data: dataset yaml.
        feature_loss: ``cwd`` | ``mgd`` | ``mimic`` | ``none``. logit_loss: ``l1`` | ``l2`` | ``bckd`` | ``none``.
        **train_args: every ultralytics train argument (epochs, imgsz, batch, device, amp, resume, project,
            name, ...) and kdloss's keys (``feature_layers``, ``student_layers``/``teacher_layers``,
            ``feature_weight``, ``logit_weight``, ``schedule``, ``schedule_final_ratio``, ``schedule_warmup``,
            ``tau``, ``alpha_mgd``, ``lambda_mgd``, ``beta``; see :class:`DistillConfig`).
    """
    model = YOLO(str(student), task="detect")
    return model.train(trainer=DistillationTrainer, data=str(data), distill_model=str(teacher),
                       feature_loss=feature_loss, logit_loss=logit_loss, **train_args)
