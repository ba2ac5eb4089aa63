"""What the default recipe is measured to do for the student's start, said in the log when a run starts.

A student built from a yaml (random weights): the default gains over training alone. A student loaded from
weights (pretrained, fine-tuned or pruned): the default alone is level with plain fine-tuning at best
(docs/experiments/pretrained-starts.md and its tables); with unlabelled images beside the labelled ones
(``unlabeled=``) it was measured above it (docs/experiments/pretrained-starts-round4.md, -round5.md). The
recipe itself is not switched: the images are the user's to give, so the log says what was measured and the
command that compares them on the user's own data.
"""

from __future__ import annotations

from pathlib import Path

EVIDENCE = "docs/experiments/pretrained-starts-tables.md"
EVIDENCE_UNLABELED = "docs/experiments/pretrained-starts-round4.md"


def loaded_from_weights(model: object) -> bool:
    """Whether ultralytics' ``model`` argument names a checkpoint (``yolov8n.pt``) rather than a yaml."""
    return Path(str(model)).suffix == ".pt"


def start_note(model: object, unlabeled: str | None = None) -> str:
    """The log line for a run whose student is ``model`` (a ``.pt`` or ``.yaml`` path, as ultralytics has it),
    distilled with the unlabelled images ``unlabeled`` (``unlabeled=``; ``None``: none)."""
    name = Path(str(model)).name
    if not loaded_from_weights(model):
        return (f"kdloss: the student is built from {name} (random weights), where the default recipe was measured "
                "to help")
    compare = f"kdloss experiment student={name} teacher=... data=... seeds=3 methods=none,"
    if unlabeled:
        return (f"kdloss: the student is loaded from weights ({name}) and distilled with unlabelled images "
                f"({unlabeled}): on such starts the default with them was measured above plain fine-tuning "
                f"({EVIDENCE_UNLABELED}); compare on your data: {compare}bckd:unlabeled={unlabeled}")
    return (f"kdloss: the student is loaded from weights ({name}): on such starts the default alone was measured "
            f"level with plain fine-tuning at best, and below it for pruned students ({EVIDENCE}), and above it with "
            "unlabelled images beside the labelled ones (unlabeled=folder, or unlabeled=train: the training images "
            f"again; {EVIDENCE_UNLABELED}); compare on your data first: {compare}bckd,bckd:unlabeled=train")
