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


def test_new_argument_variants_past_the_limit_run_eagerly(compiles):
    """Each new float value or dtype is a new graph (dynamo guards on them) until MAX_VARIANTS; later ones run
    eagerly, so a user never meets dynamo's recompile limit (8) nor a recompile per new tau."""
    from kdloss.ops._compile import MAX_VARIANTS

    def scaled(x, factor):
        return x * factor

    compiled = LazyCompiled(scaled)
    x = torch.arange(6.0)
    for factor in range(1, 13):
        torch.testing.assert_close(compiled(x, float(factor)), x * factor)
    assert len(compiles) == MAX_VARIANTS
    for size in (3, 7, 11):  # sizes are dynamic: a known variant of another size compiles nothing new
        compiled(torch.ones(size), 1.0)
    assert len(compiles) == MAX_VARIANTS


def test_cwd_over_many_taus_and_dtypes_prints_no_recompile_warning():
    """A user's detector calling CWD with new temperatures, dtypes, map shapes and grad modes: same numbers as
    eager, and dynamo's recompile-limit warning (which it prints to stderr through logging) never appears."""
    import subprocess
    import sys

    code = """
import torch
from kdloss import CWD
torch.manual_seed(0)
for tau in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]:
    for dtype in (torch.float32, torch.float64):
        for size in ((8, 8), (6, 10)):  # square maps first, then other ones (dynamo guards on equal sizes)
            for grad in (True, False):
                s = torch.randn(2, 4, *size, dtype=dtype, requires_grad=grad)
                t = torch.randn(2, 4, *size, dtype=dtype)
                with torch.set_grad_enabled(grad):
                    torch.testing.assert_close(CWD(tau=tau)(s, t), CWD(tau=tau, impl="eager")(s, t),
                                               rtol=1e-4, atol=1e-5)
print("done")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "done" in run.stdout, run.stderr[-2000:]
    assert "recompile_limit" not in run.stderr and "recompil" not in run.stderr.lower(), run.stderr[-2000:]


def test_auto_on_cuda_is_the_fastest_measured_there(monkeypatch):
    """``CUDA_AUTO`` is re-derived from the committed GPU benchmark: for each loss the fastest of kdloss's
    implementations (eager, fused, compile) in benchmarks/results-cuda.json, CWD's from the per-level rows of
    benchmarks/gpu-check-h200.log (fastest at every level); L1, never measured, is eager; a fused path rewritten
    since the measurement (PKD's Triton kernels) maps to the build that was measured as fused, only while that
    measurement is of an earlier revision of the fused paths (``fused_revision`` in its meta)."""
    import json
    import re
    from pathlib import Path

    import kdloss.ops as ops

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    measured = json.loads((root / "results-cuda.json").read_text())
    rows, revision = measured["rows"], measured["meta"].get("fused_revision", 1)
    assert revision <= ops.FUSED_REVISION
    if revision == ops.FUSED_REVISION:  # today's fused paths were measured: what they replaced no longer counts
        assert not ops.FUSED_SINCE_MEASURED, "the GPU run measured the fused paths of today: empty FUSED_SINCE_MEASURED"
    names = {"bckd": "BCKD", "crosskd": "CrossKD", "pkd": "PKD", "ld": "LD", "l2": "L2", "mgd": "MGD",
             "mimic": "Mimic"}
    expected = {}
    for loss, name in names.items():
        times = {r["impl"]: r["ms"] for r in rows if r["loss"] == loss and r["impl"] in ("eager", "fused", "compile")}
        assert set(times) == {"eager", "fused", "compile"}, loss
        expected[name] = min(times, key=times.get)
        if expected[name] == "fused" and name in ops.FUSED_SINCE_MEASURED:  # fused rewritten since: what it was
            expected[name] = ops.FUSED_SINCE_MEASURED[name]
    cwd_rows = re.findall(r"^cwd\s+P\d \([^)]*\)\s+(eager|fused|compile)\s+([\d.]+)",
                          (root / "gpu-check-h200.log").read_text(), re.M)
    levels = {}
    for impl, ms in cwd_rows:
        levels.setdefault(impl, []).append(float(ms))
    winners = {min(levels, key=lambda impl: levels[impl][i]) for i in range(3)}
    assert len(winners) == 1
    expected["CWD"] = winners.pop()
    expected["L1"] = "eager"
    assert ops.CUDA_AUTO == expected
    assert all(ops.resolve_impl(name, "auto") == "fused" for name in expected)  # CPU (and no inputs): fused
    assert ops.resolve_impl("CWD", "auto", torch.zeros(1)) == "fused"
    monkeypatch.setattr(ops, "_device_of", lambda inputs: torch.device("cuda"))
    for name, impl in expected.items():
        assert ops.resolve_impl(name, "auto", object()) == impl
        assert ops.resolve_impl(name, "eager", object()) == "eager"
