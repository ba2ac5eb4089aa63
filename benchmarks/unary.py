"""Time torch's elementwise CPU kernels that the fused kernels choose between.

    python -m benchmarks.unary          # median ms per call on a BCKD-sized (16800, 80) float32 tensor

Why it exists: on some CPUs torch's vectorised ``log1p`` (used by ``binary_cross_entropy_with_logits``)
is an order of magnitude slower than ``log``, so :mod:`kdloss.ops.bckd` computes ``log1p(e)`` from ``log``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def median_ms(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16800)
    parser.add_argument("--cols", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    x = torch.rand(args.rows, args.cols) + 0.01  # positive: a valid input for every function below
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} shape={tuple(x.shape)}")
    functions = {name: getattr(torch, name) for name in ("exp", "log", "log1p", "sigmoid")}
    times = {name: median_ms(lambda f=fn: f(x), args.repeats) for name, fn in functions.items()}
    for name, ms in times.items():
        print(f"{name:<8} {ms:8.3f} ms   {ms / times['log']:5.1f}x log")


if __name__ == "__main__":
    main()
