"""Fused implementations (custom autograd Functions and their kernels), each beside the eager reference
it is tested against. Selected with ``impl="fused"`` (what ``impl="auto"`` means on the CPU; on CUDA it picks
per loss, :func:`resolve_impl`)."""

from __future__ import annotations

import torch

IMPLS = ("auto", "eager", "fused", "compile")
KERNELS = ("auto", "triton", "compiled", "torch")


# impl="auto" on CUDA: for each loss, the implementation the committed H200 benchmark measured fastest
# (benchmarks/results-cuda.json; CWD's rows are in benchmarks/gpu-check-h200.log, eager fastest at P3, P4 and P5).
# L1 was not measured on a GPU: eager, as for L2, its twin. PKD's `fused` measured fastest, but it was then the
# compiled build, which `compile` is; `fused` PKD is now a Triton kernel not yet measured, so auto takes the build
# that was (FUSED_SINCE_MEASURED). tests/test_fallbacks.py re-derives this table.
# FUSED_REVISION counts rewrites of the fused paths; benchmarks.run records it in its JSON ("fused_revision";
# absent: 1, the measurement above). FUSED_SINCE_MEASURED describes a measurement of an earlier revision only:
# the test fails while it is kept beside a JSON of this revision.
FUSED_REVISION = 2
FUSED_SINCE_MEASURED = {"PKD": "compile"}
CUDA_AUTO = {"BCKD": "compile", "CrossKD": "compile", "PKD": "compile", "CWD": "eager", "LD": "eager", "L1": "eager",
             "L2": "eager", "MGD": "eager", "Mimic": "eager"}


def resolve_impl(loss: str, impl: str, inputs: object = None) -> str:
    """The implementation ``impl`` means for ``loss`` on the device of ``inputs`` (a tensor, a list of them or a
    :class:`kdloss.DetectionOutput`).

    ``auto`` is ``fused`` on the CPU (the fastest on this project's CPU, and the leanest in memory) and on
    CUDA the one measured fastest there (:data:`CUDA_AUTO`: never one slower than eager in that benchmark;
    docs/performance.md "On a GPU"). Other names are returned as they are; an unknown one is a ``ValueError``.
    """
    if impl not in IMPLS:
        raise ValueError(f"{loss}: impl must be one of {IMPLS}, got {impl!r}")
    if impl != "auto":
        return impl
    device = _device_of(inputs)
    if device is not None and device.type == "cuda":
        return CUDA_AUTO.get(loss, "eager")
    return "fused"


def _device_of(inputs: object) -> torch.device | None:
    if isinstance(inputs, torch.Tensor):
        return inputs.device
    if isinstance(inputs, (list, tuple)):
        return _device_of(inputs[0]) if inputs else None
    cls = getattr(inputs, "cls", None)  # a DetectionOutput
    return cls.device if isinstance(cls, torch.Tensor) else None


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
