"""Translate ultralytics Detect-head outputs into :class:`kdloss.DetectionOutput`."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.head import Detect
from ultralytics.utils.tal import make_anchors

from kdloss import DetectionOutput


def detect_head(model: nn.Module) -> Detect:
    """The Detect head of a DetectionModel (YOLOv8, YOLO11, YOLO26 and their pruned versions)."""
    for m in model.model:
        if isinstance(m, Detect):
            return m
    raise ValueError(f"{type(model).__name__} has no Detect head: kdloss distills detection models")


def detection_output(preds, head: Detect) -> DetectionOutput:
    """Map a Detect head's training output onto ``DetectionOutput``.

    Accepts the 8.4 dict (``boxes`` ``(B, 4·reg_max, A)``, ``scores`` ``(B, nc, A)``, ``feats``), the
    end-to-end dict (``one2many``/``one2one``: the one-to-many branch is distilled), the eval-mode tuple
    ``(decoded, raw)``, and the older list of per-level ``(B, nc + 4·reg_max, H, W)`` maps.
    """
    if isinstance(preds, tuple):
        preds = preds[1]
    if isinstance(preds, dict) and "one2many" in preds:
        preds = preds["one2many"]
    reg_max, nc = head.reg_max, head.nc
    if isinstance(preds, dict):
        boxes, scores, feats = preds["boxes"], preds["scores"], preds["feats"]
    elif isinstance(preds, (list, tuple)):
        feats = list(preds)
        flat = torch.cat([p.flatten(2) for p in feats], 2)
        boxes, scores = flat.split((4 * reg_max, nc), 1)
    else:
        raise TypeError(f"unrecognised Detect output of type {type(preds).__name__}")
    b, _, a = boxes.shape
    anchors, strides = make_anchors(feats, head.stride, 0.5)
    return DetectionOutput(
        cls=scores.transpose(1, 2),
        box=boxes.view(b, 4, reg_max, a).permute(0, 3, 1, 2),
        anchors=anchors,
        strides=strides.squeeze(-1),
    )
