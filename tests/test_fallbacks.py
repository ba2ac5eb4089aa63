"""``impl="compile"`` falls back to eager only when the compiler fails; every other error propagates.

``torch.compile`` is real here (dynamo traces and wraps errors as it does in training); only the backend
is swapped for a small one that counts compiles, fails, or runs out of memory.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from kdloss.ops._compile import LazyCompiled, compiler_failed


def backend_with(compile_graph):
    """A ``torch.compile`` that uses ``compile_graph(gm, example_inputs)`` as its backend."""
    real_compile = torch.compile

    def compile_with_backend(fn, dynamic=None, options=None):
        return real_compile(fn, dynamic=dynamic, backend=compile_graph)
    return compile_with_backend


@pytest.fixture
def compiles(monkeypatch):
    """Graphs compiled so far; the backend runs each graph as traced (dynamo's "eager" backend)."""
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", backend_with(counting))
    yield graphs
    torch._dynamo.reset()


def checked_double(x):
    """``2·x`` for a ``(3,)`` tensor; a ``ValueError`` sentence otherwise, as kdloss's checks raise."""
    if x.shape[0] != 3:
        raise ValueError(f"probe: expected 3 values, got {x.shape[0]}")
    return x * 2


def test_compiler_failure_warns_once_and_falls_back(monkeypatch):
    def failing(gm, example_inputs):
        raise RuntimeError("no compiler here")
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", backend_with(failing))
    calls = []
    lazy = LazyCompiled(lambda x: calls.append(x) or x + 1, name="probe")
    with pytest.warns(RuntimeWarning, match=r"(?s)torch.compile of probe failed \(BackendCompilerFailed: .*no compiler "
                                            r"here.*eager"):
        torch.testing.assert_close(lazy(torch.ones(2)), torch.full((2,), 2.0))
    assert lazy.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(lazy(torch.zeros(2)), torch.ones(2))  # no second warning, eager from now on
    assert len(calls) == 2  # one eager run per call (tracing defers the append, dropped with the failed graph)
    torch._dynamo.reset()


def test_value_error_propagates_and_keeps_the_compiled_path(compiles):
    lazy = LazyCompiled(checked_double, name="probe")
    torch.testing.assert_close(lazy(torch.ones(3)), torch.full((3,), 2.0))
    assert len(compiles) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        with pytest.raises(ValueError, match="probe: expected 3 values, got 5"):
            lazy(torch.ones(5))
    assert not lazy.failed
    torch.testing.assert_close(lazy(torch.ones(3)), torch.full((3,), 2.0))
    assert len(compiles) == 1  # still the compiled graph


def test_tensor_op_error_propagates(compiles):
    lazy = LazyCompiled(torch.add, name="probe")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="must match the size of tensor b"):
            lazy(torch.ones(2), torch.ones(3))
    assert not lazy.failed


@pytest.mark.parametrize("when", ["running", "compiling"])
def test_out_of_memory_propagates(monkeypatch, when):
    def out_of_memory(*args):
        raise torch.OutOfMemoryError(f"CUDA out of memory while {when} (simulated)")

    def backend(gm, example_inputs):
        return out_of_memory if when == "running" else out_of_memory()
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", backend_with(backend))
    lazy = LazyCompiled(lambda x: x + 1, name="probe")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(torch.OutOfMemoryError, match=f"out of memory while {when}"):
            lazy(torch.ones(2))
    assert not lazy.failed
    torch._dynamo.reset()


def test_compiler_failed_sorts_errors():
    from torch._dynamo import exc as dynamo_exc
    from torch._inductor import exc as inductor_exc

    compiler = [dynamo_exc.Unsupported("graph break"), dynamo_exc.InternalTorchDynamoError("bug"),
                inductor_exc.CppCompileError(["g++"], "error: boom"), inductor_exc.InvalidCxxCompiler()]
    not_compiler = [ValueError("check"), TypeError("check"), RuntimeError("op"), torch.OutOfMemoryError("oom"),
                    dynamo_exc.TorchRuntimeError("fake tensor op failed"), dynamo_exc.ObservedKeyError("key")]
    assert [compiler_failed(error) for error in compiler] == [True] * len(compiler)
    assert [compiler_failed(error) for error in not_compiler] == [False] * len(not_compiler)
