"""Loss throughput and memory, every implementation side by side in one run.

    python -m benchmarks.run                      # CPU, batch 2, all losses; prints a table, writes JSON
    python -m benchmarks.run --device cuda --batch 16 --json benchmarks/results-cuda.json

Per case: forward+backward time (median; CUDA events with synchronisation on GPU) and peak extra memory
(on CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on CPU the peak of the running sum of
torch's allocations and frees traced by the profiler, op by op, which counts the tensors compiled code
allocates too; the gradient itself is included). Each
implementation is reported as a ratio to the reference and to the memory-traffic floor: one elementwise
pass that reads student and teacher and writes a student-sized gradient.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from benchmarks.cases import IMPLS, Case, all_cases

LOSSES = ("cwd", "bckd", "mimic", "mgd", "l1", "l2")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step(case: Case, fn) -> None:
    for s in case.student:
        s.grad = None
    fn().backward()


def floor_fn(case: Case):
    def run():
        for s, t in zip(case.student, case.teacher):
            s.grad = torch.sub(s.detach(), t)
        return None
    return run


def time_ms(fn, device: str, min_time: float, min_reps: int = 5) -> float:
    for _ in range(2):  # warm up (and compile)
        fn()
    _sync(device)
    samples: list[float] = []
    start_all = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start_all < min_time:
        if device == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= 200:
            break
    return statistics.median(samples)


def peak_extra_mb(fn, device: str) -> float:
    fn()  # warm up outside the measurement
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own allocations net of its own frees, and the frees recorded between ops, in time order
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak / 2**20


def run(batch: int, device: str, losses: tuple[str, ...], min_time: float) -> list[dict]:
    rows = []
    for case in all_cases(batch, device, losses):
        floor = floor_fn(case)
        floor_ms, floor_mb = time_ms(floor, device, min_time), peak_extra_mb(floor, device)
        results = {}
        for impl in IMPLS:
            fn = lambda case=case, impl=impl: step(case, case.run[impl])  # noqa: E731
            results[impl] = (time_ms(fn, device, min_time), peak_extra_mb(fn, device))
        ref_ms, ref_mb = results["reference"]
        for impl, (ms, mb) in results.items():
            rows.append({"loss": case.loss, "shape": case.shape, "impl": impl, "ms": ms, "peak_mb": mb,
                         "speedup_vs_reference": ref_ms / ms, "memory_vs_reference": mb / ref_mb if ref_mb else None,
                         "time_vs_floor": ms / floor_ms, "memory_vs_floor": mb / floor_mb if floor_mb else None})
        rows.append({"loss": case.loss, "shape": case.shape, "impl": "floor", "ms": floor_ms, "peak_mb": floor_mb,
                     "speedup_vs_reference": ref_ms / floor_ms, "memory_vs_reference": floor_mb / ref_mb,
                     "time_vs_floor": 1.0, "memory_vs_floor": 1.0})
        print_rows([r for r in rows if r["loss"] == case.loss and r["shape"] == case.shape], header=not rows[:-5])
    return rows


def print_rows(rows: list[dict], header: bool) -> None:
    if header:
        print(f"{'loss':<6} {'shape':<34} {'impl':<10} {'ms':>9} {'peak MB':>9} {'x ref':>7} {'mem/ref':>8} "
              f"{'t/floor':>8} {'mem/floor':>9}")
    for r in rows:
        mem_ref = f"{r['memory_vs_reference']:.2f}" if r["memory_vs_reference"] is not None else "-"
        mem_floor = f"{r['memory_vs_floor']:.2f}" if r["memory_vs_floor"] is not None else "-"
        print(f"{r['loss']:<6} {r['shape']:<34} {r['impl']:<10} {r['ms']:>9.2f} {r['peak_mb']:>9.1f} "
              f"{r['speedup_vs_reference']:>7.2f} {mem_ref:>8} {r['time_vs_floor']:>8.2f} {mem_floor:>9}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--losses", default=",".join(LOSSES), help=f"comma list of {LOSSES}")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed repetitions per case")
    parser.add_argument("--json", default=None, help="where to write results (default benchmarks/results-DEVICE.json)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    losses = tuple(args.losses.split(","))
    print(f"kdloss loss benchmark: device={args.device} batch={args.batch} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    rows = run(args.batch, args.device, losses, args.min_time)
    path = Path(args.json or Path(__file__).parent / f"results-{args.device}.json")
    meta = {"device": args.device, "batch": args.batch, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "command": "python -m benchmarks.run " + " ".join(argv or [])}
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name()
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
