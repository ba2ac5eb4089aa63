"""Translate ultralytics Detect-head outputs into :class:`kdloss.DetectionOutput`."""

from __future__ import annotations

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


def output_branches(preds) -> tuple[str, ...]:
    """The branches a Detect output carries: ``("one2many", "one2one")`` for end-to-end heads (YOLO26),
    ``("one2many",)`` otherwise; ``preds`` as :func:`detection_output` takes it."""
    preds = _training_outputs(preds)
    return ("one2many", "one2one") if isinstance(preds, dict) and "one2many" in preds else ("one2many",)


def _training_outputs(preds):
    """The training-mode outputs inside an eval-mode ``(decoded, dict)`` tuple; anything else as it is."""
    return preds[1] if isinstance(preds, tuple) and len(preds) == 2 else preds


def detection_output(preds, head: Detect, branch: str = "one2many") -> DetectionOutput:
    """Map a Detect head's output onto ``DetectionOutput``.

    Accepts what ultralytics 8.4's ``Detect.forward`` returns outside export mode: in training the dict
    ``boxes`` ``(B, 4·reg_max, A)``, ``scores`` ``(B, nc, A)``, ``feats`` (per-level ``(B, C, H, W)`` maps),
    and in eval mode (the frozen teacher) the tuple ``(decoded, dict)``. End-to-end heads nest the dict as
    ``one2many``/``one2one``; ``branch`` picks one (``"one2one"`` is an error for heads without it). Anything
    else is a ``TypeError``.
    """
    preds = _training_outputs(preds)
    if isinstance(preds, dict) and "one2many" in preds:
        preds = preds[branch]
    elif branch == "one2one":
        raise ValueError(f"{type(head).__name__} head has no one-to-one branch (only YOLO26's end-to-end heads do)")
    if not isinstance(preds, dict) or not {"boxes", "scores", "feats"} <= preds.keys():
        found = f"dict with keys {sorted(preds)}" if isinstance(preds, dict) else type(preds).__name__
        raise TypeError(f"Detect output {found} is not ultralytics 8.4's dict of boxes, scores and feats (nor an "
                        "eval-mode (decoded, dict) tuple); export-mode heads cannot be distilled")
    boxes, scores, feats = preds["boxes"], preds["scores"], preds["feats"]
    b, _, a = boxes.shape
    anchors, strides = make_anchors(feats, head.stride, 0.5)
    return DetectionOutput(
        cls=scores.transpose(1, 2),
        box=boxes.view(b, 4, head.reg_max, a).permute(0, 3, 1, 2),
        anchors=anchors,
        strides=strides.squeeze(-1),
    )
