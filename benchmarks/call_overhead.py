"""Host time of one call of a kdloss kernel on tiny tensors: what a call costs before any arithmetic.

    python -m benchmarks.call_overhead      # median µs per call, 4x4 float32 tensors on the CPU

Why it exists: on a GPU the loss calls at YOLOv8's shapes take well under a millisecond of device work, so
what the host spends per call decides whether a ``torch.compile``d kernel beats plain torch
(docs/performance.md, "On a GPU"). Here, side by side: the eager function, the compiled one called directly (dynamo's
guard check and inductor's wrapper), the same through :class:`kdloss.ops._compile.LazyCompiled` (which adds
a ``torch._dynamo.config.patch`` per call), and that patch alone.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.unary import median_ms
from kdloss.ops._compile import DYNAMO_CONFIG, LazyCompiled
from kdloss.ops.errors import squared_error_sum


def patch_alone() -> None:
    with torch._dynamo.config.patch(DYNAMO_CONFIG):
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)
    student, teacher = torch.randn(4, 4), torch.randn(4, 4)
    lazy = LazyCompiled(squared_error_sum)
    lazy(student, teacher)  # compiles
    calls = {
        "eager squared_error_sum": lambda: squared_error_sum(student, teacher),
        "compiled, called directly": lambda: lazy.compiled(student, teacher),
        "LazyCompiled (compiled + patch)": lambda: lazy(student, teacher),
        "torch._dynamo.config.patch alone": patch_alone,
    }
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} repeats={args.repeats}")
    for name, call in calls.items():
        print(f"{name:<34} {median_ms(call, args.repeats) * 1e3:8.1f} µs")


if __name__ == "__main__":
    main()
