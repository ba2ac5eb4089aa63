"""``kdloss pretrain``: a model pretrained on the built-in corpus (:mod:`.corpus`), the offline stand-in for
``yolov8n.pt``'s COCO weights. Fine-tune it on a target as ultralytics users fine-tune COCO weights:
``yolo train model=runs/kdloss-pretrain/yolov8n/weights/best.pt data=target.yaml``."""

from __future__ import annotations

from pathlib import Path

import torch
from ultralytics import YOLO

from kdloss.adapters.ultralytics.corpus import make_corpus
from kdloss.adapters.ultralytics.offline import use_local_fonts

DEFAULTS = {"model": "yolov8n.yaml", "epochs": 40, "images": 3000, "val_images": 200, "imgsz": 128, "batch": 32,
            "seed": 0, "workers": 2, "device": "cpu", "project": "runs/kdloss-pretrain", "name": None,
            "corpus": "runs/kdloss-pretrain/corpus"}


def pretrain(**options) -> Path:
    """Write the corpus (once), train ``model`` on it from random weights, and return the run's ``best.pt``.

    An interrupted run with the same project and name resumes from its ``last.pt``; a finished one is returned
    as it is. Keys: :data:`DEFAULTS` (``name`` defaults to the model's stem, e.g. ``yolov8n``).
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"kdloss pretrain: unknown keys {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    for key in ("epochs", "images", "val_images", "imgsz", "batch"):
        if not isinstance(o[key], int) or isinstance(o[key], bool) or o[key] < 1:
            raise ValueError(f"kdloss pretrain: {key}={o[key]!r} must be a positive integer")
    name = o["name"] or Path(str(o["model"])).stem
    project = Path(o["project"]).resolve()  # ultralytics puts a relative project under runs/detect/
    run = project / name
    best, last = run / "weights" / "best.pt", run / "weights" / "last.pt"
    if last.is_file():
        checkpoint = torch.load(last, map_location="cpu", weights_only=False)
        if checkpoint.get("epoch", -1) == -1:  # ultralytics marks a finished run's last.pt with epoch -1
            return best
        use_local_fonts()
        YOLO(str(last)).train(resume=True)
        return best
    use_local_fonts()  # ultralytics' dataset check would download a font
    data = make_corpus(o["corpus"], train=o["images"], val=o["val_images"], imgsz=o["imgsz"], seed=o["seed"])
    YOLO(str(o["model"])).train(data=str(data), epochs=o["epochs"], imgsz=o["imgsz"], batch=o["batch"],
                                seed=o["seed"], workers=o["workers"], device=o["device"], project=str(project),
                                name=name, exist_ok=True, plots=False, amp=False, verbose=False)
    return best
