"""Checks a distillation run passes before ultralytics creates its run folder: every bad input a one-line
``ValueError`` naming the key and the value (the CLI prints it and exits with code 2), never a traceback, a
download attempt or a half-made run.

:func:`check_run` is called by the trainer (``model.train(trainer=DistillationTrainer, ...)``, ``distill()`` and
``kdloss distill`` all reach it). It also makes the paths a run stores absolute, so that ``resume`` works from
any working directory.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import torch
from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG, LOGGER

from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.losses import key_owners
from kdloss.adapters.ultralytics.unlabeled import TRAIN_IMAGES, check_unlabeled

# kdloss keys that only act through one loss (the loss table's own keys): one given without its loss is
# ignored, so it is warned about
KEY_OWNERS = key_owners()
# what torch.load raises for a file that is not a checkpoint (empty, truncated, text, another pickle); other
# errors (out of memory, permissions) propagate as they are
UNREADABLE = (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, AttributeError, ImportError,
              UnicodeDecodeError, KeyError, IndexError, OSError)  # OSError: a truncated zip archive's seek
IMGSZ_FAR = 1.5  # a run's image size this many times above or below the teacher's training size is warned about


def load_checkpoint_file(key: str, path: str | Path) -> dict:
    """The checkpoint dict of an ultralytics ``.pt`` at ``path``; ``ValueError`` naming ``key`` for a folder,
    a missing, empty, truncated or corrupt file, a text file, or a bare ``state_dict``."""
    path = Path(path)
    if path.is_dir():
        raise folder_error(key, path)
    if not path.is_file():
        raise ValueError(f"{key}={path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{key}={path}: the file is empty")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{key}={path}: no permission to read it")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except UNREADABLE as error:  # a file torch cannot unpickle: the reason in one line
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise ValueError(f"{key}={path} is not a loadable PyTorch checkpoint (truncated, corrupt or not a .pt "
                         f"file: {type(error).__name__}: {reason})") from None
    model = (checkpoint.get("ema") or checkpoint.get("model")) if isinstance(checkpoint, dict) else None
    if isinstance(model, torch.nn.Module):
        return checkpoint
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{key}={path} holds a bare state_dict (tensors without the model): save the model as "
                         "ultralytics does (its run's weights/best.pt, or YOLO(...).save(path))")
    raise ValueError(f"{key}={path} holds a {type(checkpoint).__name__}, not an ultralytics model checkpoint "
                     "(a dict with the model under 'model' or 'ema')")


def folder_error(key: str, path: Path) -> ValueError:
    """The error for a folder given where a checkpoint file belongs, naming the checkpoint inside if any."""
    found = sorted(path.glob("weights/best.pt")) + sorted(path.glob("best.pt")) + sorted(path.glob("*.pt"))
    hint = f", e.g. {key}={found[0]}" if found else ""
    return ValueError(f"{key}={path} is a folder: give the checkpoint file{hint}")


def check_train_args(overrides: dict):
    """ultralytics' own type checks of its keys (``epochs=abc``), and sizes that must be positive; returns the
    parsed args (ultralytics' defaults filled in)."""
    try:
        args = get_cfg(DEFAULT_CFG, {k: v for k, v in overrides.items() if k not in DistillConfig.keys()})
    except (TypeError, ValueError, SyntaxError, KeyError) as error:
        raise ValueError(_one_line(error)) from None
    sizes = args.imgsz if isinstance(args.imgsz, (list, tuple)) else [args.imgsz]
    if not sizes or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f"imgsz={args.imgsz!r} must be a positive whole number of pixels (or [h, w])")
    if not isinstance(args.epochs, int) or args.epochs < 1:
        raise ValueError(f"epochs={args.epochs!r} must be a whole number >= 1")
    return args


def check_data(data: str | Path) -> None:
    """A dataset yaml on this machine must name image folders that exist (else ultralytics fails deep in
    training, or tries a download)."""
    from ultralytics.utils import DATASETS_DIR, YAML

    path = Path(data)
    if not path.is_file():
        if ships_with_ultralytics(str(data)):
            return  # a name that ships with ultralytics (coco8.yaml): ultralytics resolves it
        raise ValueError(f"data={data}: no such file")
    try:
        spec = YAML.load(path)
    except Exception as error:
        raise ValueError(f"data={data} is not a readable yaml file ({_one_line(error)})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"data={data} is not a dataset yaml (expected keys path, train, val, names)")
    if "val" not in spec and "validation" in spec:  # ultralytics renames it
        spec["val"] = spec["validation"]
    missing_keys = [key for key in ("train", "val") if not spec.get(key)]
    if missing_keys:
        raise ValueError(f"data={data} has no {' or '.join(missing_keys)}: key (train and val are required)")
    root = Path(spec.get("path") or path.parent)
    if not root.exists() and not root.is_absolute():
        root = (DATASETS_DIR / root).resolve()
    for split in ("train", "val"):
        for entry in spec[split] if isinstance(spec[split], list) else [spec[split]]:
            folder = Path(entry) if Path(entry).is_absolute() else root / entry
            if not folder.exists() and not (str(entry).startswith("../") and (root / str(entry)[3:]).exists()):
                if spec.get("download") and not os.environ.get("YOLO_OFFLINE"):
                    return  # ultralytics downloads it, as the user asked by giving a download key
                raise ValueError(f"data={data}: its {split} images, {folder}, are not on this machine")


def check_resume(checkpoint_path: str | Path, overrides: dict) -> tuple[dict, int]:
    """The checkpoint of a run to resume: unfinished, with its teacher and data still on this machine
    (or given anew). Returns the checkpoint's train args and how many epochs it had trained."""
    checkpoint = load_checkpoint_file("resume", checkpoint_path)
    args = checkpoint.get("train_args") or {}
    epochs = args.get("epochs")
    if checkpoint.get("epoch", -1) == -1 or checkpoint.get("optimizer") is None:
        raise ValueError(f"resume={checkpoint_path}: this run finished ({epochs} epochs), nothing is left to "
                         f"resume; to train it further start a new run with student={checkpoint_path}")
    teacher = overrides.get("distill_model") or args.get("distill_model")
    if not teacher:
        raise ValueError(f"resume={checkpoint_path}: the run has no teacher (not a kdloss run?); pass teacher=PATH")
    if not Path(teacher).is_file():
        raise ValueError(f"resume={checkpoint_path}: the run's teacher, {teacher}, is not on this machine; "
                         "pass teacher=PATH to resume with that file")
    data = overrides.get("data") or args.get("data")
    if data and Path(data).suffix in {".yaml", ".yml"} and not Path(data).is_file() and \
            not ships_with_ultralytics(str(data)):
        raise ValueError(f"resume={checkpoint_path}: the run's data, {data}, is not on this machine; "
                         "pass data=PATH to resume with that file")
    if data:
        check_data(data)
    return args, int(checkpoint["epoch"]) + 1


def absolute_paths(overrides: dict) -> None:
    """Store the teacher and data as absolute paths (in place), so the run resumes from anywhere (ultralytics
    stores the run's own folder, ``save_dir``, as an absolute path itself)."""
    for key in ("distill_model", "data"):
        value = overrides.get(key)
        if isinstance(value, (str, Path)) and Path(value).is_file():
            overrides[key] = str(Path(value).resolve())


def check_run(overrides: dict, config: DistillConfig, given: set[str]) -> int | None:
    """Everything a new or resumed run is checked for before ultralytics starts it (``overrides`` are
    ultralytics' keys; ``given``: the kdloss keys the user set). Edits ``overrides`` in place: absolute teacher
    and data paths, and on resume the checkpoint to resume and the run's own folder (so a resume from another
    directory continues that run there, never the newest run ultralytics would pick for ``resume=True``).

    A trainer rebuilt from a run's own args (ultralytics' DDP workers: ``save_dir`` is set) was checked when
    the run started, and is not checked again. Returns, on resume, the epochs the checkpoint had trained."""
    resume = overrides.get("resume")
    if overrides.get("save_dir") and not resume:
        return None
    if resume:
        done = None
        path = resume if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else overrides.get("model")
        if path and str(path).endswith(".pt"):
            if overrides.get("distill_model"):
                load_checkpoint_file("teacher", overrides["distill_model"])  # the one-line error for a bad one
            args, done = check_resume(path, overrides)
            overrides["resume"] = str(path)  # this checkpoint, not ultralytics' newest run
            run = Path(path).resolve().parent
            if run.name == "weights":
                overrides["save_dir"] = str(run.parent)  # continue in the run's folder, wherever we are
            epochs, stop_epochs = args.get("epochs"), args.get("stop_epochs", config.stop_epochs)
            if isinstance(epochs, int) and isinstance(stop_epochs, int) and stop_epochs >= epochs:
                _stop_epochs_error(stop_epochs, epochs)
        absolute_paths(overrides)
        return done
    args = check_train_args(overrides)
    teacher = overrides.get("distill_model")
    if not teacher:
        raise ValueError("no teacher: pass teacher=path/to/teacher.pt (or distill_model=...)")
    checkpoint = load_checkpoint_file("teacher", teacher)
    _warn_far_image_size(checkpoint, args.imgsz, teacher)
    if overrides.get("data"):
        check_data(overrides["data"])
    if config.unlabeled:
        check_unlabeled(config.unlabeled)
        if config.unlabeled != TRAIN_IMAGES:  # `train` follows the data, wherever it is
            config.unlabeled = str(Path(config.unlabeled).resolve())  # a resume from another folder finds it
    if config.stop_epochs >= args.epochs:
        _stop_epochs_error(config.stop_epochs, args.epochs)
    used = set(config.logit_losses()) | {config.feature_loss}
    for key in sorted(given):
        owner = KEY_OWNERS.get(key)
        if owner and owner not in used:
            LOGGER.warning(f"kdloss: {key}={getattr(config, key)} has no effect: it belongs to {owner}, and this "
                           f"run uses feature_loss={config.feature_loss} logit_loss={config.logit_loss}")
    absolute_paths(overrides)
    return None


def drop_rows_after(results_csv: str | Path, epochs: int) -> None:
    """Keep the rows of ultralytics' ``results.csv`` up to epoch ``epochs`` (1-based): a run interrupted after an
    epoch's row was written but before its checkpoint trains that epoch again on resume, which would add it
    twice."""
    path = Path(results_csv)
    if not path.is_file():
        return
    header, *rows = path.read_text().splitlines()
    kept = [row for row in rows if row.strip() and float(row.split(",")[0]) <= epochs]
    if len(kept) != len(rows):
        path.write_text("\n".join([header, *kept]) + "\n")


def remove_failed_run(save_dir: str | Path | None, since: float) -> None:
    """Remove the folder of a run that failed before it trained an epoch: no checkpoint in ``weights/``, no
    epoch in ``results.csv``, and every file in it written by this run (modified at ``since``, a
    ``time.time()`` taken when the run started, or later: ``args.yaml``, label plots, ...). A folder with a
    checkpoint, a finished epoch or any older file (a user's, an earlier run's) is left as it is."""
    if not save_dir or not Path(save_dir).is_dir():
        return
    run = Path(save_dir)
    files = [f for f in run.rglob("*") if f.is_file()]
    if any(f.suffix == ".pt" for f in files) or any(f.stat().st_mtime < since - 1 for f in files):
        return
    results = run / "results.csv"
    if results.is_file() and len(results.read_text().strip().splitlines()) > 1:
        return
    shutil.rmtree(run, ignore_errors=True)


def ships_with_ultralytics(name: str) -> bool:
    """Whether ultralytics resolves the yaml ``name`` from its own package, as it does for ``yolov8n.yaml``
    (built from ``yolov8.yaml`` at scale n) and ``coco8.yaml``; nothing is downloaded."""
    from ultralytics.utils.checks import check_yaml

    if Path(name).name != name:
        return False  # a path, not a name: it had to exist
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix  # as ultralytics does
    return bool(check_yaml(unified, hard=False) or check_yaml(name, hard=False))


def _stop_epochs_error(stop_epochs: int, epochs: int) -> None:
    raise ValueError(f"stop_epochs={stop_epochs} >= epochs={epochs}: distillation would be off for the whole run "
                     f"(stop_epochs is how many final epochs train without it); use stop_epochs < {epochs}")


def _warn_far_image_size(checkpoint: dict, imgsz, teacher: str | Path) -> None:
    trained = (checkpoint.get("train_args") or {}).get("imgsz")
    size = max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz
    trained = max(trained) if isinstance(trained, (list, tuple)) else trained
    if isinstance(trained, int) and isinstance(size, int) and trained > 0 and size > 0 and \
            max(size / trained, trained / size) >= IMGSZ_FAR:
        LOGGER.warning(f"kdloss: this run's imgsz={size} is far from the teacher's training imgsz={trained} "
                       f"({teacher}): the teacher is weaker at other sizes, so it may teach poorly; train at "
                       f"imgsz={trained}, or a teacher trained near {size}")


def _one_line(error: BaseException) -> str:
    text = re.sub("[\U0001F000-\U0001FFFF\u2600-\u27BF\uFE0F]", "", str(error))  # ultralytics' emojis
    return " ".join(text.split())[:300] or type(error).__name__
