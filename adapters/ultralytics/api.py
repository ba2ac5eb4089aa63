"""``distill()``: ``YOLO(student).train(...)`` with a teacher and kdloss's losses."""

from __future__ import annotations

from pathlib import Path

from ultralytics import YOLO

from kdloss.adapters.ultralytics.config import FEATURE_LOSSES, LOGIT_LOSSES, DistillConfig
from kdloss.adapters.ultralytics.preflight import check_resume, folder_error, ships_with_ultralytics
from kdloss.adapters.ultralytics.trainer import distillation_trainer


def distill(student: str | Path, teacher: str | Path | None = None, data: str | Path | None = None,
            feature_loss: str | None = None, logit_loss: str | None = None, **train_args):
    """Train ``student`` on ``data`` while distilling from ``teacher``; returns what ``YOLO.train`` returns.

    The student's task (detect, segment, pose, obb) picks ultralytics' trainer for it
    (:func:`distillation_trainer`); the teacher must be a model of the same task.

    Args:
        student: a model yaml (``yolov8n.yaml``), a ``.pt`` checkpoint, or a checkpoint of a pruned model
            (trained as loaded, never rebuilt from yaml). To resume: the run's ``last.pt`` with ``resume=True``.
        teacher: a ``.pt`` checkpoint trained on the same classes (needed unless resuming).
        data: dataset yaml (needed unless resuming).
        feature_loss: ``none`` (default: the sweep in docs/results.md found no gain from a feature loss on top of
            BCKD) | {feature_losses}.
        logit_loss: ``bckd`` (default) | {logit_losses} | ``none``, or several joined by ``+`` (``bckd+ld``).
        **train_args: every ultralytics train argument (epochs, imgsz, batch, device, amp, resume, project,
            name, ...) and kdloss's keys ({keys}; see :class:`DistillConfig`).
    """
    check_paths(student=student, teacher=teacher, data=data)
    optional = {"distill_model": teacher, "data": data, "feature_loss": feature_loss, "logit_loss": logit_loss}
    train_args.update({key: str(value) for key, value in optional.items() if value is not None})
    resume = train_args.get("resume")
    if not resume and ("distill_model" not in train_args or "data" not in train_args):
        raise ValueError("distill() needs teacher= and data= (unless resuming a run with resume=True)")
    if resume:  # before ultralytics, which starts a new run on its defaults when the checkpoint is finished
        checkpoint = resume if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else student
        if str(checkpoint).endswith(".pt"):
            check_resume(checkpoint, train_args)
    model = YOLO(str(student))
    return model.train(trainer=distillation_trainer(model.task), **train_args)


if distill.__doc__:  # the choices and keys from the loss table and the config (no docstrings under python -OO)
    distill.__doc__ = distill.__doc__.format(
        feature_losses=" | ".join(f"``{name}``" for name in FEATURE_LOSSES if name != "none"),
        logit_losses=" | ".join(f"``{name}``" for name in LOGIT_LOSSES if name not in ("none", "bckd")),
        keys=", ".join(f"``{key}``" for key in DistillConfig.keys() if key not in ("feature_loss", "logit_loss")))


def check_paths(student: str | Path | None = None, teacher: str | Path | None = None,
                data: str | Path | None = None, model: str | Path | None = None) -> None:
    """One-line ``ValueError`` for a missing file, before ultralytics would look for it online.

    ``teacher``: a checkpoint on this machine. ``student`` and ``model``: a ``.pt`` on this machine, or a
    model yaml (a file, or a name ultralytics ships such as ``yolov8n.yaml``). ``data``: a dataset yaml on
    this machine, or a name ultralytics ships (``coco8.yaml``).
    """
    for key, value in (("teacher", teacher), ("student", student), ("model", model), ("data", data)):
        if value is None or Path(value).is_file():
            continue
        if Path(value).is_dir() and key != "data":
            raise folder_error(key, Path(value))
        if key != "teacher" and Path(value).suffix in {".yaml", ".yml"} and ships_with_ultralytics(str(value)):
            continue
        raise ValueError(f"{key}={value}: no such file")
