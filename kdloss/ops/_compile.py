"""Lazy ``torch.compile`` that falls back to eager, with one warning, only when the compiler itself fails."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

# Inductor options for every kdloss kernel. ``cpp.dynamic_threads``: with ``dynamic=True`` the C++ backend
# may judge a symbolic size too small to split and emit a single-threaded loop (2x slower on 2 cores for
# an elementwise gradient at YOLOv8's P3 size); this keeps one OpenMP region and lets OpenMP split it.
# Scoped to these compiles, the user's global inductor config is left alone.
INDUCTOR_OPTIONS = {"cpp.dynamic_threads": True}
# Python floats (tau, beta) are specialised: each value gets its own graph, guarded. With torch 2.14's
# default (unspecialised, symbolic floats) a kernel using ``x.pow(beta)`` beside another use of ``beta``
# returned the first call's result for later betas (tests/test_impls.py::test_compiled_kernels_follow_a_new_beta).
# ``recompile_limit``: one argument variant can still take a few graphs (dynamo also guards on grad mode,
# autocast, strides and which sizes are equal), so the limit is raised from dynamo's 8 for these kernels alone,
# above what MAX_VARIANTS variants can build, and its warning is not reached.
DYNAMO_CONFIG = {"specialize_float": True, "recompile_limit": 64}
# Argument variants one compiled kernel compiles before new ones run eagerly (no recompile per new tau).
MAX_VARIANTS = 6


def compiler_failed(error: Exception) -> bool:
    """Whether ``error`` is a failure of the compiler: tracing (``Unsupported``, internal dynamo errors), the
    backend (``BackendCompilerFailed``, whose subclass ``InductorError`` wraps lowering and codegen errors) or the
    C++/CUDA build of the generated code. Not dynamo's wrappers of the traced code's own errors: a tensor op
    that fails on fake tensors (shape mismatch) or a Python exception met while tracing, which eager would
    raise the same way."""
    # imported here, not with kdloss: torch.compile has loaded them by now, and dynamo costs a second to import
    from torch._dynamo import exc as dynamo_exc
    from torch._inductor import exc as inductor_exc

    compiler_errors = (dynamo_exc.TorchDynamoException, dynamo_exc.FailOnRecompileLimitHit,
                       inductor_exc.CppCompileError, inductor_exc.InvalidCxxCompiler)
    traced_code_errors = (dynamo_exc.TorchRuntimeError, dynamo_exc.ObservedException)
    return isinstance(error, compiler_errors) and not isinstance(error, traced_code_errors)


class LazyCompiled:
    """Calls ``torch.compile(fn, dynamic=True)`` on first use. ``dynamic=True`` keeps multi-scale training
    (changing H, W and batch) from recompiling every step; float arguments are specialised
    (:data:`DYNAMO_CONFIG`), so a new tau or beta compiles once more.

    Each new *variant* of the arguments (the dtypes, devices, ranks and gradient flags of the tensors, which
    sizes are 0 or 1, and the values of Python numbers: what dynamo guards on) compiles a graph. After
    :data:`MAX_VARIANTS` variants a new one runs ``fn`` eagerly (the same numbers, tested) instead of
    recompiling: no recompile per new tau or dtype. Within a variant dynamo may still build a graph for each
    grad mode, autocast state or layout it meets; :data:`DYNAMO_CONFIG` raises its recompile limit for these
    kernels so that its warning is not reached.

    If the compiler fails (:func:`compiler_failed`), warns once and calls ``fn`` from then on (``failed``).
    Every other error propagates unchanged and the compiled path stays: the ``ValueError`` of a shape check,
    a ``RuntimeError`` of a tensor op, ``torch.OutOfMemoryError`` (also when the backend ran out of memory
    while compiling: the wrapped error is raised).
    """

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self.compiled: Callable | None = None
        self.failed = False
        self.variants: set[tuple] = set()
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.fn(*args, **kwargs)
        variant = tuple(_guarded(value) for value in (*args, *kwargs.items()))
        if variant not in self.variants:
            if len(self.variants) >= MAX_VARIANTS:
                return self.fn(*args, **kwargs)
            self.variants.add(variant)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True, options=INDUCTOR_OPTIONS)
        try:
            with torch._dynamo.config.patch(DYNAMO_CONFIG):
                return self.compiled(*args, **kwargs)
        except Exception as error:  # compile errors surface at the first call with new shapes or guards
            if isinstance(getattr(error, "inner_exception", None), torch.OutOfMemoryError):
                raise error.inner_exception from error  # the backend ran out of memory while compiling
            if not compiler_failed(error):
                raise
            self.failed = True
            warnings.warn(f"kdloss: torch.compile of {self.name} failed ({type(error).__name__}: {error}); "
                          "using the eager implementation from now on", RuntimeWarning, stacklevel=2)
            return self.fn(*args, **kwargs)


def _guarded(value) -> object:
    """What dynamo specialises on in one argument (see :class:`LazyCompiled`): sizes are dynamic, but 0 and 1."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):  # a keyword argument
        return value[0], _guarded(value[1])
    if isinstance(value, torch.Tensor):
        return (value.dtype, value.device, value.dim(), value.requires_grad, tuple(min(s, 2) for s in value.shape))
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_guarded(v) for v in value)
    return type(value).__name__
