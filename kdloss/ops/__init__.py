"""Fused implementations (custom autograd Functions and their kernels), each beside the eager reference
it is tested against. Selected with ``impl="fused"`` (the default through ``impl="auto"``)."""

IMPLS = ("auto", "eager", "fused", "compile")


def resolve_impl(loss: str, impl: str) -> str:
    """``auto`` is ``fused``: the fastest here on CPU and GPU (see benchmarks/README.md)."""
    if impl not in IMPLS:
        raise ValueError(f"{loss}: impl must be one of {IMPLS}, got {impl!r}")
    return "fused" if impl == "auto" else impl
