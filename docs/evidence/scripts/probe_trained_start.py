"""Question 2 of docs/experiments/pretrained-starts.md: why distillation hurts a trained start. For each
per-epoch checkpoint of a run (``save_period=1``: ``weights/epoch{N}.pt``), on the same fixed training batches
(no augmentation), with the default recipe's loss (or ``method=``):

- ``ratio``: ‖∇L_kd‖ / ‖∇L_det‖ on the student's shared parameters (every layer before the Detect head);
- ``cosine``: the cosine between those two gradients;
- ``disagreement``: mean |σ(teacher) − σ(student)| of the class scores over anchors where the teacher's top
  score is above 0.1;
- ``wrong_top``: the share of the assigner's positive anchors where the teacher's top class is not the
  assigned one.

    .venv/bin/python docs/evidence/scripts/probe_trained_start.py RUN_DIR TEACHER DATA [method=bckd batches=8]

Writes ``RUN_DIR/probe.json`` (one row per epoch) and prints a table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch
from ultralytics.cfg import get_cfg
from ultralytics.data import build_dataloader, build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from kdloss.adapters.ultralytics.config import DistillConfig
from kdloss.adapters.ultralytics.experiment import parse_method
from kdloss.adapters.ultralytics.heads import detect_head, detection_output
from kdloss.adapters.ultralytics.model import KDDistillationModel


def fixed_batches(data: str, args, count: int, batch: int = 32) -> list[dict]:
    """The first ``count`` batches of the training images as validation loads them (no augmentation)."""
    info = check_det_dataset(data)
    dataset = build_yolo_dataset(args, info["train"], batch, info, mode="val", stride=32)
    loader = build_dataloader(dataset, batch, workers=0, shuffle=False)
    out = []
    for i, b in enumerate(loader):
        if i == count:
            break
        b["img"] = b["img"].float() / 255
        out.append(b)
    return out


def student_of(checkpoint: Path) -> tuple[torch.nn.Module, dict]:
    """The student in a checkpoint (its EMA, as ultralytics evaluates it) and the checkpoint dict."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float()
    return getattr(model, "student_model", model), ckpt


def probe_epoch(model: KDDistillationModel, batches: list[dict]) -> dict:
    student = model.student_model
    head = detect_head(student)
    shared = [p for layer in student.model[:head.i] for p in layer.parameters()]
    ratios, cosines, gaps, wrong = [], [], [], []
    assigned = {}

    def record(_module, _inputs, outputs):
        assigned["scores"], assigned["fg"] = outputs[2].detach(), outputs[3].detach()

    model.train()
    if getattr(student, "criterion", None) is None:
        student.criterion = student.init_criterion()
    hook = student.criterion.assigner.register_forward_hook(record)
    try:
        for batch in batches:
            vector, _ = model.loss(batch)
            n = batch["img"].shape[0]
            det, kd = vector[:3].sum() / n, vector[3] / n
            g_det = torch.cat([g.flatten() for g in torch.autograd.grad(det, shared, retain_graph=True)])
            g_kd = torch.cat([g.flatten() for g in torch.autograd.grad(kd, shared)])
            ratios.append(float(g_kd.norm() / g_det.norm().clamp(min=1e-12)))
            cosines.append(float(torch.nn.functional.cosine_similarity(g_kd, g_det, dim=0)))
            with torch.no_grad():
                model._teacher_feats.clear()
                model._student_feats.clear()
                model._training_teacher()(batch["img"])
                student(batch["img"])
                last = len(model.feats_idx) - 1
                p_t = detection_output(model._teacher_feats[last], detect_head(model.teacher_model)).cls.sigmoid()
                p_s = detection_output(model._student_feats[last], head).cls.sigmoid()
                confident = p_t.amax(-1) > 0.1
                gaps.append(float((p_t - p_s).abs()[confident].mean()) if confident.any() else float("nan"))
                fg = assigned["fg"].bool()
                if fg.any():
                    wrong.append(float((p_t.argmax(-1) != assigned["scores"].argmax(-1))[fg].float().mean()))
                model._teacher_feats.clear()
                model._student_feats.clear()
    finally:
        hook.remove()
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"ratio": mean(ratios), "cosine": mean(cosines), "disagreement": mean(gaps), "wrong_top": mean(wrong)}


def main(argv: list[str]) -> None:
    run, teacher, data = Path(argv[0]), argv[1], argv[2]
    options = dict(arg.split("=", 1) for arg in argv[3:])
    method, count = options.get("method", "bckd"), int(options.get("batches", 8))
    checkpoints = sorted(run.glob("weights/epoch*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    if not checkpoints:
        raise SystemExit(f"{run}/weights has no epoch*.pt: train with save_period=1")
    rows, batches = [], None
    for checkpoint in checkpoints:
        student, ckpt = student_of(checkpoint)
        args = get_cfg(overrides={k: v for k, v in (ckpt.get("train_args") or {}).items()
                                  if k not in DistillConfig.keys()})
        student.args = args
        for p in student.parameters():
            p.requires_grad_(True)
        if batches is None:
            batches = fixed_batches(data, args, count)
        config = DistillConfig.from_dict(parse_method(method))
        model = KDDistillationModel(teacher, student, config)
        epochs = max(int(args.epochs), 1)
        model.progress = min((ckpt["epoch"] + 1) / epochs, 1.0)
        row = {"epoch": ckpt["epoch"] + 1, **probe_epoch(model, batches)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (run / "probe.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n| epoch | ‖∇kd‖/‖∇det‖ | cosine | disagreement | teacher's top class ≠ assigned |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['epoch']} | {r['ratio']:.3f} | {r['cosine']:+.3f} | {r['disagreement']:.3f} | "
              f"{r['wrong_top']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
