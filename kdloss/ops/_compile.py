"""Lazy ``torch.compile`` with a one-time warning and a permanent eager fallback."""

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


class LazyCompiled:
    """Calls ``torch.compile(fn, dynamic=True)`` on first use; if compiling or running the compiled code
    fails, warns once and calls ``fn`` from then on. ``dynamic=True`` keeps multi-scale training (changing
    H, W and batch) from recompiling every step."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self.compiled: Callable | None = None
        self.failed = False
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.fn(*args, **kwargs)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True, options=INDUCTOR_OPTIONS)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as error:  # compile errors surface at the first call, with any backend
            self.failed = True
            warnings.warn(f"kdloss: torch.compile of {self.name} failed ({type(error).__name__}: {error}); "
                          "using the eager implementation from now on", RuntimeWarning, stacklevel=2)
            return self.fn(*args, **kwargs)
