"""Fused implementations (custom autograd Functions and their kernels), each beside the eager reference
it is tested against. Selected with ``impl="fused"`` (the default through ``impl="auto"``)."""

from __future__ import annotations

import torch

IMPLS = ("auto", "eager", "fused", "compile")
KERNELS = ("auto", "triton", "compiled", "torch")


def resolve_impl(loss: str, impl: str) -> str:
    """``auto`` is ``fused``: the fastest on this project's CPU, and the leanest in memory on CPU and GPU. On an
    H200 it was also the fastest only for BCKD, CrossKD and PKD (README, "On a GPU")."""
    if impl not in IMPLS:
        raise ValueError(f"{loss}: impl must be one of {IMPLS}, got {impl!r}")
    return "fused" if impl == "auto" else impl


def select_kernels(loss: str, tensor: torch.Tensor, kernels: str, *, has_triton: bool) -> str:
    """The one selector of a fused Function's kernels: ``"triton"``, ``"compiled"`` (inductor) or ``"torch"``.

    ``"auto"`` is Triton for float32/16 CUDA tensors of a loss that has a Triton build, else ``"compiled"``.
    The Triton kernels compute in float32, so float64 never goes to them (``"auto"`` picks ``"compiled"``,
    an explicit ``"triton"`` is an error). A loss without a Triton build runs ``"compiled"`` for
    ``"triton"``. Unknown names are a ``ValueError`` naming the loss.
    """
    from kdloss.ops import triton_kernels

    if kernels not in KERNELS:
        raise ValueError(f"{loss}: kernels must be one of {KERNELS}, got {kernels!r}")
    if kernels == "auto":
        use_triton = has_triton and tensor.is_cuda and triton_kernels.AVAILABLE and tensor.dtype != torch.float64
        return "triton" if use_triton else "compiled"
    if kernels == "triton":
        if not has_triton:
            return "compiled"
        if not triton_kernels.AVAILABLE:
            raise ValueError(f"{loss}: kernels='triton' but Triton is not installed")
        if tensor.dtype == torch.float64:
            raise ValueError(f"{loss}: the Triton kernels compute in float32; float64 runs with kernels='compiled' "
                             "or 'torch' (kernels='auto' chooses them)")
    return kernels
