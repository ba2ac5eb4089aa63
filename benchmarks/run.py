"""Loss throughput and memory, every implementation side by side in one run.

    python -m benchmarks.run                      # CPU, batch 2, all losses; prints a table, writes JSON
    python -m benchmarks.run --device cuda --batch 16 --json benchmarks/results-cuda.json

Per case: forward+backward time (median; on GPU, CUDA events around the call alone, each call starting
from an idle GPU with a cold L2 cache, see :func:`_time_once`) and peak extra memory above the inputs, the
gradient included (on CUDA ``torch.cuda.max_memory_allocated``; on CPU the growth of the peak RSS in a
fresh process per case, see :func:`cpu_peak_extra_mb`). Each implementation is reported as a ratio to the
reference and to the memory-traffic floor: one elementwise pass that reads student and teacher and writes
a student-sized gradient.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch._dynamo.utils import counters

from benchmarks.cases import IMPLS, Case, build_case, case_keys

LOSSES = ("cwd", "bckd", "mimic", "mgd", "pkd", "l1", "l2", "ld", "crosskd")
L2_FLUSH_BYTES = 256 * 2**20  # several times the L2 cache (get_device_properties().L2_cache_size)


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


def time_ms(fns: dict[str, object], device: str, min_time: float, rounds: int = 5) -> dict[str, float]:
    """Median forward+backward time of each function, measured in interleaved rounds so that drifts in
    machine load hit every implementation alike."""
    for fn in fns.values():  # warm up (and compile)
        fn()
        fn()
    _sync(device)
    graphs = compiled_graphs()
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device) if device == "cuda" else None
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start_round = time.perf_counter()
            while time.perf_counter() - start_round < min_time / rounds or len(samples[name]) < 3:
                samples[name].append(_time_once(fn, device, flush))
    if compiled_graphs() != graphs:
        raise RuntimeError(f"torch.compile compiled {compiled_graphs() - graphs} graph(s) while timing "
                           f"{list(fns)}: a shape, dtype or hyper-parameter changed between calls")
    return {name: statistics.median(values) for name, values in samples.items()}


def compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far."""
    return counters["stats"]["unique_graphs"]


def _time_once(fn, device: str, flush: torch.Tensor | None) -> float:
    """Milliseconds of one call. On CUDA: ``flush`` is overwritten first (evicting the inputs from L2, as
    the rest of a training step would) and the GPU drained, then CUDA events time only the call."""
    if device == "cuda":
        flush.zero_()
        torch.cuda.synchronize()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return begin.elapsed_time(end)
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def peak_extra_mb(fn, device: str, student: list[torch.Tensor]) -> float:
    """Peak memory above what is allocated before ``fn`` runs; the gradients ``fn`` leaves count."""
    fn()  # warm up outside the measurement
    if device == "cuda":
        for tensor in student:
            tensor.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    for tensor in student:
        tensor.grad = None
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak-RSS mark (VmHWM) to the current RSS
    fn()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_peak_extra_mb(loss: str, level: str, batch: int, impl: str) -> float:
    """CPU peak memory of one case in a fresh process: RSS growth with glibc returning every block over
    64 KiB to the system on free (``MALLOC_MMAP_THRESHOLD_``), so the RSS follows the live tensors,
    including those compiled code allocates outside torch's dispatcher."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--memory-probe", loss, level, str(batch), impl],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(loss: str, level: str, batch: int, impl: str) -> None:
    torch.manual_seed(0)
    case = build_case(loss, level, batch, "cpu")
    fn = floor_fn(case) if impl == "floor" else (lambda: step(case, case.run[impl]))
    print(peak_extra_mb(fn, "cpu", case.student))


def run(batch: int, device: str, losses: tuple[str, ...], min_time: float, on_case=None) -> list[dict]:
    """Every case's rows; ``on_case(rows so far)`` after each case (``main`` rewrites the JSON there, so a run
    cut short keeps the cases it finished)."""
    rows = []
    for loss, level in case_keys(losses):
        case = build_case(loss, level, batch, device)

        fns = {impl: (lambda case=case, impl=impl: step(case, case.run[impl])) for impl in IMPLS}
        fns["floor"] = floor_fn(case)
        times = time_ms(fns, device, min_time * len(fns))
        results = {}
        for impl, fn in fns.items():
            memory = (peak_extra_mb(fn, device, case.student) if device == "cuda"
                      else cpu_peak_extra_mb(loss, level, batch, impl))
            results[impl] = (times[impl], memory)
        ref_ms, ref_mb = results["reference"]
        floor_ms, floor_mb = results["floor"]
        case_rows = [{"loss": case.loss, "shape": case.shape, "impl": impl, "ms": ms, "peak_mb": mb,
                      "speedup_vs_reference": ref_ms / ms, "memory_vs_reference": mb / ref_mb,
                      "time_vs_floor": ms / floor_ms, "memory_vs_floor": mb / floor_mb}
                     for impl, (ms, mb) in results.items()]
        print_rows(case_rows, header=not rows)
        rows += case_rows
        if on_case is not None:
            on_case(rows)
    return rows


def print_rows(rows: list[dict], header: bool) -> None:
    if header:
        print(f"{'loss':<6} {'shape':<34} {'impl':<10} {'ms':>9} {'peak MB':>9} {'x ref':>7} {'mem/ref':>8} "
              f"{'t/floor':>8} {'mem/floor':>9}")
    for r in rows:
        print(f"{r['loss']:<6} {r['shape']:<34} {r['impl']:<10} {r['ms']:>9.2f} {r['peak_mb']:>9.1f} "
              f"{r['speedup_vs_reference']:>7.2f} {r['memory_vs_reference']:>8.2f} {r['time_vs_floor']:>8.2f} "
              f"{r['memory_vs_floor']:>9.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--losses", default=",".join(LOSSES), help=f"comma list of {LOSSES}")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds of timed repetitions per implementation and case")
    parser.add_argument("--json", default=None, help="where to write results (default benchmarks/results-DEVICE.json)")
    parser.add_argument("--memory-probe", nargs=4, metavar=("LOSS", "LEVEL", "BATCH", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        loss, level, batch, impl = args.memory_probe
        return memory_probe(loss, level, int(batch), impl)
    torch.manual_seed(0)
    losses = tuple(args.losses.split(","))
    print(f"kdloss loss benchmark: device={args.device} batch={args.batch} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    path = Path(args.json or Path(__file__).parent / f"results-{args.device}.json")
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    from kdloss.ops import FUSED_REVISION

    meta = {"device": args.device, "batch": args.batch, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "command": command, "fused_revision": FUSED_REVISION}
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name()
    run(args.batch, args.device, losses, args.min_time,
        on_case=lambda rows: path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
