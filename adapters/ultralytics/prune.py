"""``kdloss prune``: remove channels of an ultralytics detection model with torch-pruning, then save it as a
plain ultralytics checkpoint (it loads with ``YOLO()`` where kdloss is not installed) to fine-tune, e.g.
with distillation from the unpruned teacher (``kdloss distill student=pruned.pt ...``). YOLOv8-style
models only (Conv, C2f, SPPF, Detect): YOLO11's C2PSA and YOLO26's blocks split channels in ways that are
not handled, and are refused.

What is pruned: the output channels of the backbone's and neck's convolutions (downsampling convs, the
outputs of C2f/C3k2 blocks, their bottlenecks' hidden channels, SPPF), and with them the input channels
of every layer that reads them, concatenations included. What is kept: the Detect head's own outputs
(classes, DFL bins), and inside each C2f the two halves of ``cv1`` and the bottleneck outputs added to them,
because C2f splits ``cv1``'s output in two equal halves (a checkpoint of ultralytics' own classes cannot hold
uneven ones); the bottlenecks' outputs, which are added to or concatenated beside those halves, are kept
too. ``ratio`` is the target reduction of GFLOPs (at imgsz 640): channels are removed in small
steps (:data:`STEPS`) until GFLOPs fall to ``(1 − ratio)`` of the original or below.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

METHODS = ("lamp", "l1", "l2", "taylor")
TAYLOR_BATCHES = 2  # training batches whose loss gradients score the channels before each taylor step
STEPS = 100  # pruning steps over the whole range: each removes about 1 % of the prunable channels


@dataclass
class PruneReport:
    """What ``prune`` did: sizes before and after and, with ``data``, mAP before and after (no fine-tuning)."""

    source: str
    output: str
    method: str
    ratio: float
    gflops_before: float
    gflops_after: float
    params_before: int
    params_after: int
    map50_95_before: float | None = None
    map50_95_after: float | None = None

    def table(self) -> str:
        def fmt(value):
            return "—" if value is None else f"{value:.4f}"

        return "\n".join([
            "| model | GFLOPs (640) | params | mAP50-95 (no fine-tuning) |", "| --- | ---: | ---: | ---: |",
            f"| {Path(self.source).name} | {self.gflops_before:.2f} | {self.params_before:,} | "
            f"{fmt(self.map50_95_before)} |",
            f"| {Path(self.output).name} ({self.method}, ratio {self.ratio}) | {self.gflops_after:.2f} | "
            f"{self.params_after:,} | {fmt(self.map50_95_after)} |",
        ])


def prune(model: str | Path, data: str | Path | None = None, ratio: float = 0.5, method: str = "lamp",
          output: str | Path | None = None, imgsz: int = 640, device: str | None = None) -> PruneReport:
    """Prune ``model`` (a detection ``.pt`` or yaml) to ``(1 − ratio)`` of its GFLOPs and save it.

    Args:
        model: an ultralytics detection checkpoint (or a model yaml, pruned at random initialisation).
        data: dataset yaml; when given, mAP50-95 before and after pruning is measured on its val split.
        ratio: target GFLOPs reduction, ``0 < ratio < 1`` (0.5 halves the GFLOPs).
        method: channel importance: ``lamp`` (LAMP, Lee et al., ICLR 2021), ``l1`` or ``l2`` (magnitude), or
            ``taylor`` (first-order Taylor, Molchanov et al., CVPR 2019: |w · ∂L/∂w| of the detection loss on
            :data:`TAYLOR_BATCHES` training batches of ``data``, recomputed before every pruning step; needs
            ``data``).
        output: where to save; default ``<model stem>-pruned.pt`` beside ``model`` (or in the working folder
            for a yaml).
        imgsz: image size for the example input and for validation.
        device: validation device (ultralytics' ``device=``).

    Returns:
        :class:`PruneReport`.
    """
    import torch_pruning as tp
    from ultralytics import YOLO
    from ultralytics.nn.modules import SPPF, Bottleneck, C2f, Concat, Conv, Detect
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import get_flops

    if not 0 < float(ratio) < 1:
        raise ValueError(f"ratio={ratio}: give the GFLOPs reduction as a fraction between 0 and 1 (0.5 halves them)")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    if method == "taylor" and data is None:
        raise ValueError("method=taylor scores channels with the detection loss's gradients: give data=...")
    yolo = YOLO(str(model))
    net = yolo.model
    if type(net) is not DetectionModel:
        raise ValueError(f"model={model}: kdloss prune handles detection models (DetectionModel), not "
                         f"{type(net).__name__}")
    supported = (Conv, C2f, SPPF, Concat, nn.Upsample, Detect)
    unsupported = sorted({type(m).__name__ for m in net.model if type(m) not in supported})
    if unsupported:
        raise ValueError(f"model={model}: kdloss prune handles YOLOv8-style models (Conv, C2f, SPPF, Concat, "
                         f"Upsample, Detect); this one has {', '.join(unsupported)}")
    source = Path(str(model))
    output = Path(output) if output else (source.parent if source.suffix == ".pt" else Path.cwd()) / (
        f"{source.stem}-pruned.pt")
    before = _val(yolo, data, imgsz, device)
    net = net.float().cpu().eval()
    params_before, gflops_before = _count(net), get_flops(net, 640)
    ignored: list[nn.Module] = []
    for module in net.modules():
        if isinstance(module, Detect):
            ignored.append(module)
        if isinstance(module, C2f):  # equal halves of cv1, and the bottleneck outputs
            ignored.append(module.cv1.conv)
            ignored += [block.cv2.conv for block in module.m if isinstance(block, Bottleneck)]
    for p in net.parameters():
        p.requires_grad_(True)
    importance = {"lamp": tp.importance.LAMPImportance(p=2), "l1": tp.importance.MagnitudeImportance(p=1),
                  "l2": tp.importance.MagnitudeImportance(p=2), "taylor": tp.importance.TaylorImportance()}[method]
    gradients = _TaylorGradients(net, data, imgsz) if method == "taylor" else None
    example = torch.zeros(1, 3, imgsz, imgsz)
    pruner = tp.pruner.MetaPruner(net, example, importance=importance, pruning_ratio=0.99, iterative_steps=STEPS,
                                  ignored_layers=ignored)
    target = (1.0 - float(ratio)) * gflops_before
    gflops = gflops_before
    for _ in range(STEPS):
        if gflops <= target:
            break
        if gradients is not None:
            gradients.compute()
        pruner.step()
        gflops = get_flops(net, 640)
    if gflops > target:
        raise ValueError(f"ratio={ratio}: only {1 - gflops / gflops_before:.0%} of the GFLOPs could be removed with "
                         "the Detect head and C2f halves kept; ask for less")
    for p in net.parameters():
        p.requires_grad_(False)
        p.grad = None
    if gradients is not None:
        gradients.restore()
    _save(net, yolo, output)
    after = _val(YOLO(str(output)), data, imgsz, device)
    return PruneReport(source=str(model), output=str(output), method=method, ratio=float(ratio),
                       gflops_before=round(gflops_before, 3), gflops_after=round(gflops, 3),
                       params_before=params_before, params_after=_count(net), map50_95_before=before,
                       map50_95_after=after)


class _TaylorGradients:
    """Fills ``.grad`` of ``net``'s parameters with the detection loss's gradients on the first training batches
    of ``data`` (no augmentation, BatchNorm in eval mode so its statistics stay as trained)."""

    def __init__(self, net: nn.Module, data: str | Path, imgsz: int, batch: int = 8):
        from ultralytics.cfg import get_cfg
        from ultralytics.data import build_dataloader, build_yolo_dataset
        from ultralytics.data.utils import check_det_dataset

        info = check_det_dataset(str(data))
        cfg = get_cfg(overrides={"imgsz": imgsz, "batch": batch, "workers": 0})
        dataset = build_yolo_dataset(cfg, info["train"], batch, info, mode="val", stride=32)
        self.loader = build_dataloader(dataset, batch, 0, shuffle=False)
        self.net, self.had_args, self.saved_args = net, hasattr(net, "args"), getattr(net, "args", None)
        net.args = cfg  # the loss's box/cls/dfl gains

    def compute(self) -> None:
        self.net.zero_grad(set_to_none=True)
        self.net.criterion = None  # rebuilt for the current channels
        for i, batch in enumerate(self.loader):
            if i == TAYLOR_BATCHES:
                break
            batch["img"] = batch["img"].float() / 255
            loss, _ = self.net.loss(batch)
            loss.sum().backward()

    def restore(self) -> None:
        self.net.criterion = None
        if self.had_args:
            self.net.args = self.saved_args
        else:
            del self.net.args


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _val(yolo, data, imgsz: int, device) -> float | None:
    if data is None:
        return None
    metrics = yolo.val(data=str(data), imgsz=imgsz, batch=16, workers=0, plots=False, verbose=False, device=device)
    return float(metrics.box.map)


def _save(net: nn.Module, yolo, output: Path) -> None:
    """A checkpoint as ultralytics writes one: the model in half precision and the training arguments."""
    from copy import deepcopy

    from ultralytics import __version__

    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"date": datetime.datetime.now().isoformat(), "version": __version__, "epoch": -1,
                "best_fitness": None, "model": deepcopy(net).half(), "ema": None, "updates": None,
                "optimizer": None, "train_args": dict((getattr(yolo, "ckpt", None) or {}).get("train_args") or {})},
               output)
