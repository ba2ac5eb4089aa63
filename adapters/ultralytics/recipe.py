"""What the default recipe is measured to do for the student's start, said in the log when a run starts.

A student built from a yaml (random weights): the default gains over training alone. A student loaded from
weights (pretrained, fine-tuned or pruned): no recipe searched so far beats plain fine-tuning by the
pre-registered standard (docs/experiments/pretrained-starts.md and its tables), so the recipe stays the default
and the log says so, with the command that compares them on the user's own data.
"""

from __future__ import annotations

from pathlib import Path

EVIDENCE = "docs/experiments/pretrained-starts-tables.md"


def loaded_from_weights(model: object) -> bool:
    """Whether ultralytics' ``model`` argument names a checkpoint (``yolov8n.pt``) rather than a yaml."""
    return Path(str(model)).suffix == ".pt"


def start_note(model: object) -> str:
    """The log line for a run whose student is ``model`` (a ``.pt`` or ``.yaml`` path, as ultralytics has it)."""
    name = Path(str(model)).name
    if not loaded_from_weights(model):
        return (f"kdloss: the student is built from {name} (random weights), where the default recipe was measured "
                "to help")
    return (f"kdloss: the student is loaded from weights ({name}): on such starts the default recipe was measured "
            f"level with plain fine-tuning at best, and below it for pruned students ({EVIDENCE}); compare on your "
            f"data first: kdloss experiment student={name} teacher=... data=... methods=none,bckd seeds=3")
