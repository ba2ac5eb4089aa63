"""The same cases under pytest-benchmark: ``pytest benchmarks --benchmark-only [--benchmark-json out.json]``.

For the side-by-side table with ratios and memory, run ``python -m benchmarks.run``.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.cases import IMPLS, all_cases, case_level
from benchmarks.run import LOSSES, cpu_peak_extra_mb, floor_fn, peak_extra_mb, step

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = all_cases(batch=2, device=DEVICE, losses=LOSSES)


@pytest.mark.parametrize("impl", [*IMPLS, "floor"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.loss}-{case_level(c)}" for c in CASES])
def test_forward_backward(benchmark, case, impl):
    fn = floor_fn(case) if impl == "floor" else (lambda: step(case, case.run[impl]))
    fn()  # compile outside the timing
    level = case_level(case)
    benchmark.extra_info["peak_extra_mb"] = (peak_extra_mb(fn, DEVICE, case.student) if DEVICE == "cuda"
                                             else cpu_peak_extra_mb(case.loss, level, 2, impl))
    benchmark(fn)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
