"""What distillation costs per training step, against the plain step, the floor and ultralytics' built-in.

    python -m benchmarks.train_step                    # CPU: yolov8n student, yolov8s teacher, imgsz 128, batch 16
    python -m benchmarks.train_step --device cuda --imgsz 640 --batch 16 --amp

One training iteration = forward, loss, backward and an SGD step, on the same synthetic batch (random
images, 4 random boxes per image) for every variant, timed in interleaved rounds (median ms):

- ``plain``: the student alone (ultralytics' detection loss);
- ``floor``: ``plain`` plus the teacher's forward pass under ``no_grad``, which any distillation must pay
  (the teacher as loaded);
- ``kdloss <losses>``: :class:`KDDistillationModel` with those losses (its default ``fold_teacher=True``:
  the teacher runs on a Conv+BN-folded copy); ``kdloss bckd unfolded``: ``fold_teacher=False``;
- ``builtin``: ultralytics 8.4's own ``DistillationModel`` (``distill_model=``, score-weighted L2, ``dis=6``).

Each is reported as a ratio to the plain step, and its overhead over plain as a ratio to the floor's
overhead. Peak memory: on CUDA ``max_memory_allocated`` of one step; on the CPU the growth of the peak RSS
over one step in a fresh process per variant. Start-up (``--startup``): seconds from a fresh process to the
end of the first training step, for plain, kdloss (default recipe) and builtin, with an empty
``TORCHINDUCTOR_CACHE_DIR`` (cold) and again with the one the cold run filled (warm).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.run import peak_extra_mb

VARIANTS = ("plain", "floor", "kdloss bckd+cwd", "kdloss cwd", "kdloss bckd", "kdloss bckd unfolded", "kdloss mgd",
            "kdloss pkd", "kdloss bckd+ld", "kdloss crosskd", "builtin")


def make_batch(batch: int, imgsz: int, device: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat((torch.rand(4 * batch, 2, generator=g) * 0.6 + 0.2, torch.rand(4 * batch, 2, generator=g) * 0.2
                       + 0.05), 1)
    return {"img": torch.rand(batch, 3, imgsz, imgsz, generator=g).to(device),
            "batch_idx": torch.arange(batch).repeat_interleave(4).float().to(device),
            "cls": torch.randint(0, 6, (4 * batch, 1), generator=g).float().to(device), "bboxes": boxes.to(device)}


def build(variant: str, imgsz: int, device: str):
    """(the module that trains, its loss callable, the teacher or None) for one variant."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.tasks import DetectionModel

    from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel
    from kdloss.adapters.ultralytics.config import FEATURE_LOSSES

    torch.manual_seed(0)
    student = DetectionModel("yolov8n.yaml", nc=6, verbose=False).to(device)
    student.args = get_cfg(overrides={"imgsz": imgsz})
    teacher = DetectionModel("yolov8s.yaml", nc=6, verbose=False).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if variant in ("plain", "floor"):
        student.train()
        return student, student.loss, teacher if variant == "floor" else None
    if variant == "builtin":
        model = DistillationModel(teacher, student)
    else:
        losses = variant.split()[1].split("+")
        feature = next((x for x in losses if x in FEATURE_LOSSES), "none")
        logit = "+".join(x for x in losses if x not in FEATURE_LOSSES) or "none"
        model = KDDistillationModel(teacher, student, DistillConfig(feature_loss=feature, logit_loss=logit,
                                                                    fold_teacher="unfolded" not in variant))
    model.train()
    return model, model.loss, None


def make_step(variant: str, imgsz: int, batch: int, device: str, amp: bool):
    model, loss_fn, teacher = build(variant, imgsz, device)
    data = make_batch(batch, imgsz, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device, enabled=amp)

    def step():
        with torch.autocast(device, enabled=amp):
            if teacher is not None:
                with torch.no_grad():
                    teacher(data["img"])
            loss, _ = loss_fn(data)
        scaler.scale(loss.sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(variants: tuple[str, ...], imgsz: int, batch: int, device: str, amp: bool, rounds: int,
               per_round: int) -> dict[str, float]:
    steps = {v: make_step(v, imgsz, batch, device, amp) for v in variants}
    for fn in steps.values():  # warm up: allocator, compiled kernels
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        for v, fn in steps.items():
            for _ in range(per_round):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                samples[v].append((time.perf_counter() - start) * 1e3)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{v} {statistics.median(s):.0f} ms" for v, s in
                                                         samples.items()), flush=True)
    return {v: statistics.median(s) for v, s in samples.items()}


def peak_mb(variant: str, imgsz: int, batch: int, device: str, amp: bool) -> float:
    """Peak memory of one step above what is allocated before it (:func:`benchmarks.run.peak_extra_mb`); on
    the CPU in a fresh process."""
    if device == "cuda":
        return peak_extra_mb(make_step(variant, imgsz, batch, device, amp), device, [])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_step", "--memory-probe", variant, "--imgsz",
                          str(imgsz), "--batch", str(batch)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(variant: str, imgsz: int, batch: int) -> None:
    print(peak_extra_mb(make_step(variant, imgsz, batch, "cpu", False), "cpu", []))


STARTUP = """
import sys
sys.path.insert(0, {root!r})
from benchmarks.train_step import make_step
make_step({variant!r}, {imgsz}, {batch}, "cpu", False)()
"""


def startup_seconds(variant: str, imgsz: int, batch: int, cache: str) -> float:
    """Seconds from interpreter start to the end of the first step (module imports included)."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "YOLO_OFFLINE": "1"}
    code = STARTUP.format(root=str(Path(__file__).parents[1]), variant=variant, imgsz=imgsz, batch=batch)
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - begin


def startup(imgsz: int, batch: int) -> dict[str, dict[str, float]]:
    out = {}
    for variant in ("plain", "kdloss bckd", "kdloss bckd+cwd", "builtin"):  # kdloss bckd: the default recipe
        with tempfile.TemporaryDirectory(prefix="kdloss-inductor-") as cache:
            cold = startup_seconds(variant, imgsz, batch, cache)
            warm = startup_seconds(variant, imgsz, batch, cache)
        out[variant] = {"cold_s": cold, "warm_s": warm}
        print(f"  start-up {variant}: cold {cold:.1f} s, warm {warm:.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--amp", action="store_true", help="autocast + GradScaler (CUDA)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {VARIANTS}")
    parser.add_argument("--startup", action="store_true", help="also time start-up, cold and warm (CPU)")
    parser.add_argument("--json", default=None, help="default benchmarks/train-step-DEVICE.json")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.memory_probe:
        return memory_probe(args.memory_probe, args.imgsz, args.batch)
    variants = tuple(args.variants.split(","))
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    if "plain" not in variants or "floor" not in variants:
        variants = ("plain", "floor", *[v for v in variants if v not in ("plain", "floor")])
    print(f"kdloss training-step benchmark: device={args.device} imgsz={args.imgsz} batch={args.batch} "
          f"amp={args.amp} torch={torch.__version__} threads={torch.get_num_threads()}", flush=True)
    times = time_steps(variants, args.imgsz, args.batch, args.device, args.amp, args.rounds, args.per_round)
    plain, floor = times["plain"], times["floor"]
    rows = []
    print(f"{'variant':<21} {'ms/step':>9} {'peak MB':>9} {'x plain':>8} {'overhead/floor':>15} {'x floor':>8}")
    for v in variants:
        mb = peak_mb(v, args.imgsz, args.batch, args.device, args.amp)
        overhead = (times[v] - plain) / (floor - plain) if floor > plain else float("nan")
        rows.append({"variant": v, "ms": times[v], "peak_mb": mb, "vs_plain": times[v] / plain,
                     "overhead_vs_floor_overhead": overhead, "vs_floor": times[v] / floor})
        print(f"{v:<21} {times[v]:>9.1f} {mb:>9.1f} {times[v] / plain:>8.2f} {overhead:>15.2f} "
              f"{times[v] / floor:>8.2f}", flush=True)
    result = {"device": args.device, "imgsz": args.imgsz, "batch": args.batch, "amp": args.amp,
              "torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads(),
              "command": "python -m benchmarks.train_step " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": rows}
    if args.startup:
        result["startup"] = startup(args.imgsz, args.batch)
    path = Path(args.json or Path(__file__).parent / f"train-step-{args.device}.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
