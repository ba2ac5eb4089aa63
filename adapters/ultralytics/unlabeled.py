"""Unlabelled images in distillation (``unlabeled=folder``): each training step appends a batch of them to the
labelled batch; the teacher and the student run on both, the detection loss sees the labelled images only and
the distillation losses see all of them, so the student learns the unlabelled images from the teacher alone.

The labelled images come first in ``batch["img"]``; ``batch["labeled"]`` counts them (absent: all are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from ultralytics.data import YOLODataset
from ultralytics.data.build import build_dataloader
from ultralytics.data.utils import IMG_FORMATS
from ultralytics.utils import colorstr

LABELED = "labeled"  # the batch key counting the labelled images at the front of batch["img"]
TRAIN_IMAGES = "train"  # unlabeled=train: the data's own training images, read a second time without labels


def unlabeled_images(value: str, data: dict) -> str | list[str]:
    """Where ``unlabeled=value`` reads its images: for ``train`` (:data:`TRAIN_IMAGES`), the training images
    of ``data`` (ultralytics' dataset dict: its ``train`` entry, a folder, a ``.txt`` list or a list of them,
    as ultralytics resolved it); else ``value`` itself (a folder named ``train`` is given as ``./train``)."""
    return data["train"] if value == TRAIN_IMAGES else value


def check_unlabeled(path: str) -> None:
    """One-line ``ValueError`` before training for an ``unlabeled=`` that is not a folder of images or a ``.txt``
    list of image paths (what ultralytics reads as a train split); ``train`` (the data's own training images)
    is checked by ultralytics with the data."""
    if path == TRAIN_IMAGES:
        return
    source = Path(path)
    if source.is_dir():
        if not any(p.suffix.lower().lstrip(".") in IMG_FORMATS for p in source.rglob("*") if p.is_file()):
            raise ValueError(f"unlabeled={path}: the folder holds no images ({', '.join(sorted(IMG_FORMATS))})")
    elif source.is_file():
        if source.suffix != ".txt":
            raise ValueError(f"unlabeled={path}: expected a folder of images or a .txt list of image paths")
    else:
        raise ValueError(f"unlabeled={path}: no such folder or file")


def labeled_count(batch: dict) -> int:
    """How many images at the front of ``batch["img"]`` have labels."""
    return int(batch.get(LABELED, batch["img"].shape[0]))


def append_unlabeled(batch: dict, unlabeled: dict) -> dict:
    """``batch`` with ``unlabeled["img"]`` (resized to the batch's size, for ``multi_scale``) after its images and
    ``batch["labeled"]`` set; both already preprocessed (on the device, in [0, 1]). Labels are untouched: they
    index the labelled images only."""
    images, extra = batch["img"], unlabeled["img"]
    if extra.shape[2:] != images.shape[2:]:
        extra = F.interpolate(extra, size=images.shape[2:], mode="bilinear", align_corners=False)
    batch[LABELED] = images.shape[0]
    batch["img"] = torch.cat([images, extra.to(images.dtype)])
    return batch


def leading(preds, count: int, total: int):
    """The student's raw predictions (nested dicts, lists and tuples of ``(total, ...)`` tensors) for the first
    ``count`` images, for the detection loss."""
    if isinstance(preds, torch.Tensor):
        return preds[:count] if preds.dim() and preds.shape[0] == total else preds
    if isinstance(preds, dict):
        return {key: leading(value, count, total) for key, value in preds.items()}
    if isinstance(preds, (list, tuple)):
        return type(preds)(leading(value, count, total) for value in preds)
    return preds


class CycledBatches:
    """Endless batches from an ultralytics train loader (one pass after another, reshuffled each pass)."""

    def __init__(self, loader):
        self.loader = loader
        self._batches = None

    def restart(self) -> None:
        """Start a new pass at the next batch (after the loader's dataset changed: ``close_mosaic``)."""
        self._batches = None

    def __next__(self) -> dict:
        if self._batches is not None:
            batch = next(self._batches, None)
            if batch is not None:
                return batch
        self._batches = iter(self.loader)
        return next(self._batches)


class UnlabeledDataset(YOLODataset):
    """ultralytics' train dataset (the same augmentation, mosaic included) over images that have no labels:
    every image is read as one without objects, and no label file is looked for (ultralytics refuses a train
    split without labels)."""

    def get_labels(self) -> list[dict]:
        keypoints = self.data.get("kpt_shape") if self.use_keypoints else None
        labels = []
        for file in self.im_files:
            with Image.open(file) as image:
                width, height = image.size
            labels.append({"im_file": file, "shape": (height, width), "cls": np.zeros((0, 1), dtype=np.float32),
                           "bboxes": np.zeros((0, 4), dtype=np.float32), "segments": [],
                           "keypoints": None if keypoints is None else np.zeros((0, *keypoints), dtype=np.float32),
                           "normalized": True, "bbox_format": "xywh"})
        return labels


def unlabeled_loader(trainer, path: str, batch: int):
    """A train loader of the images at ``path`` for ``trainer`` (its image size, augmentation, workers, rank)."""
    from ultralytics.utils import LOCAL_RANK
    from ultralytics.utils.torch_utils import unwrap_model

    args = trainer.args
    stride = max(int(unwrap_model(trainer.model).stride.max()), 32)
    dataset = UnlabeledDataset(img_path=path, imgsz=args.imgsz, batch_size=batch, augment=True, hyp=args, rect=False,
                               cache=None, single_cls=bool(args.single_cls), stride=stride, pad=0.0,
                               prefix=colorstr("unlabeled: "), task=args.task, classes=None, data=trainer.data,
                               fraction=1.0)
    return build_dataloader(dataset, batch=batch, workers=args.workers, shuffle=True, rank=LOCAL_RANK,
                            device=trainer.device)
