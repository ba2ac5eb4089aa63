"""The one-launch error sums over levels (kdloss/ops/triton_levels.py) against the plain formula, in float32 and
bfloat16, values and gradients: compiled on CUDA, interpreted (TRITON_INTERPRET=1) on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import DEVICE

from kdloss import L1, L2, DetectionOutput, Mimic
from kdloss.ops import triton_kernels, triton_levels
from kdloss.ops.errors import error_levels_fused

pytestmark = pytest.mark.skipif(not triton_kernels.AVAILABLE, reason="triton not installed")
# level sizes: a partial block, several blocks with a ragged end, a small one, a tiny one
SHAPES = [(2, 3, 5, 7), (2, 8, 20, 20), (5, 11), (3,)]
SCALES = [0.5, 1.0 / 6400, 2.0, 0.1]
# float32: rounding of the block sums only. bfloat16: the gradient is rounded once to bfloat16 by both sides, but
# Triton's interpreter rounds towards zero (the GPU rounds to nearest): one bfloat16 step apart at most.
GRAD_TOLERANCE = {torch.float32: {"rtol": 1e-6, "atol": 1e-9}, torch.bfloat16: {"rtol": 2**-7, "atol": 1e-12}}


def plain_formula(students, teachers, scales, power):
    """Σ_l scale_l · Σ |s_l − t_l|^power in float64 (the teachers constants)."""
    return sum(scale * (s.double() - t.double()).abs().pow(power).sum() for s, t, scale in
               zip(students, teachers, scales))


def levels(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    students = [torch.randn(shape, generator=g).to(dtype).to(DEVICE).requires_grad_(True) for shape in SHAPES]
    teachers = [torch.randn(shape, generator=g).to(dtype).to(DEVICE) for shape in SHAPES]
    return students, teachers


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("power", [1, 2])
def test_one_launch_matches_the_plain_formula(power, dtype):
    students, teachers = levels(dtype)
    value = error_levels_fused(students, teachers, SCALES, power, kernels="triton")
    (value * 1.7).backward()  # an upstream gradient that is not 1
    reference_students = [s.detach().double().requires_grad_(True) for s in students]
    expected = plain_formula(reference_students, teachers, SCALES, power)
    (expected * 1.7).backward()
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-6)
    for s, reference in zip(students, reference_students):
        assert s.grad.dtype == dtype and s.grad.shape == s.shape
        # the reference gradient rounded once to the student's dtype, as eager autograd would give it
        torch.testing.assert_close(s.grad, reference.grad.to(dtype), **GRAD_TOLERANCE[dtype])


@pytest.mark.parametrize("power", [1, 2])
def test_triton_matches_the_torch_kernels(power):
    """The same Function with the CPU kernels: one formula, two builds."""
    students, teachers = levels(torch.float32, seed=1)
    triton_value = error_levels_fused(students, teachers, SCALES, power, kernels="triton")
    triton_value.backward()
    triton_grads = [s.grad.clone() for s in students]
    for s in students:
        s.grad = None
    torch_value = error_levels_fused(students, teachers, SCALES, power, kernels="torch")
    torch_value.backward()
    torch.testing.assert_close(triton_value, torch_value, rtol=1e-6, atol=1e-6)
    for triton_grad, s in zip(triton_grads, students):
        torch.testing.assert_close(triton_grad, s.grad, rtol=1e-6, atol=1e-9)


def test_all_levels_take_one_launch_each_way(monkeypatch):
    launches = []
    launch = triton_levels._launch
    monkeypatch.setattr(triton_levels, "_launch", lambda *args: launches.append(len(args[0])) or launch(*args))
    students, teachers = levels(torch.float32)
    error_levels_fused(students, teachers, SCALES, 2, kernels="triton").backward()
    assert launches == [4, 4]  # forward and backward, all four levels each time


def test_empty_levels_add_nothing_and_get_empty_gradients():
    g = torch.Generator().manual_seed(4)
    shapes = [(0, 8, 4, 4), (2, 3, 5, 7), (0,)]
    students = [torch.randn(shape, generator=g).to(DEVICE).requires_grad_(True) for shape in shapes]
    teachers = [torch.randn(shape, generator=g).to(DEVICE) for shape in shapes]
    value = error_levels_fused(students, teachers, [1.0, 0.5, 1.0], 2, kernels="triton")
    value.backward()
    torch.testing.assert_close(value.double(), plain_formula(students[1:2], teachers[1:2], [0.5], 2))
    assert [tuple(s.grad.shape) for s in students] == shapes
    empty = error_levels_fused(students[::2], teachers[::2], [1.0, 1.0], 2, kernels="triton")
    assert empty.item() == 0.0 and empty.requires_grad


def test_non_contiguous_levels_and_no_grad():
    g = torch.Generator().manual_seed(2)
    student = torch.randn(2, 6, 9, 9, generator=g).to(DEVICE).transpose(1, 3)  # channels-last-like strides
    teacher = torch.randn(2, 6, 9, 9, generator=g).to(DEVICE).transpose(1, 3)
    value = error_levels_fused([student], [teacher], [1.0], 2, kernels="triton")
    torch.testing.assert_close(value.double(), plain_formula([student], [teacher], [1.0], 2), rtol=1e-6, atol=1e-6)
    assert not value.requires_grad


def test_more_levels_than_one_launch_takes_run_four_at_a_time(monkeypatch):
    launches = []
    launch = triton_levels._launch
    monkeypatch.setattr(triton_levels, "_launch", lambda *args: launches.append(len(args[0])) or launch(*args))
    first, teachers = levels(torch.float32)
    second = [s.detach().clone().requires_grad_(True) for s in first[:2]]
    students, teachers, scales = first + second, teachers + teachers[:2], SCALES + SCALES[:2]  # six levels
    value = error_levels_fused(students, teachers, scales, 2, kernels="triton")
    value.backward()
    assert launches == [4, 2, 4, 2]
    reference = [s.detach().double().requires_grad_(True) for s in students]
    expected = plain_formula(reference, teachers, scales, 2)
    expected.backward()
    torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-6)
    for s, r in zip(students, reference):
        torch.testing.assert_close(s.grad.double(), r.grad, rtol=1e-6, atol=1e-9)


def test_levels_the_kernels_cannot_take_run_level_by_level():
    """A float64 level beside float32 ones: no Triton (it computes in float32); the float64 sum stays float64."""
    students, teachers = levels(torch.float32)
    students[1] = students[1].detach().double().requires_grad_(True)
    teachers[1] = teachers[1].double()
    value = error_levels_fused(students, teachers, SCALES, 2, kernels="triton")
    assert value.dtype == torch.float64
    torch.testing.assert_close(value, plain_formula(students, teachers, SCALES, 2), rtol=1e-6, atol=1e-6)


def test_a_teacher_of_another_shape_is_an_error():
    students, teachers = levels(torch.float32)
    with pytest.raises(ValueError, match=r"error sums: level 1: student \(2, 8, 20, 20\) and teacher \(8, 20, 20\)"):
        error_levels_fused(students, [teachers[0], teachers[1][0], *teachers[2:]], SCALES, 2, kernels="triton")
    with pytest.raises(ValueError, match="give one of each per level"):
        error_levels_fused(students, teachers, SCALES[:2], 2)


def test_frozen_levels_get_no_gradient_and_nan_is_as_torch():
    students, teachers = levels(torch.float32)
    students[0] = students[0].detach()  # a frozen level
    teachers[3] = teachers[3].clone()
    teachers[3][1] = float("nan")
    error_levels_fused(students, teachers, SCALES, 1, kernels="triton").backward()
    assert students[0].grad is None
    eager = students[3].detach().clone().requires_grad_(True)
    ((eager - teachers[3]).abs().sum() * SCALES[3]).backward()
    torch.testing.assert_close(students[3].grad, eager.grad, equal_nan=True)  # torch: sign(NaN) = 0


def test_unspecialised_arguments_are_the_kernels_own():
    """Triton ignores a misspelt name in do_not_specialize (the sizes would then recompile per value); the
    interpreter keeps no such list, so the kernels are looked at compiled, in a fresh process (LD's and PKD's too)."""
    code = textwrap.dedent("""
        from kdloss.ops import triton_ld, triton_pkd, triton_levels as t
        expected = {t._error_levels_kernel: 7, t._cwd_levels_kernel: 7, triton_ld._box_kl_kernel: 2,
                    triton_pkd._pkd_levels_kernel: 16}
        for kernel, count in expected.items():
            names = [kernel.arg_names[i] if isinstance(i, int) else i for i in kernel.do_not_specialize]
            assert len(names) == count and set(names) <= set(kernel.arg_names), names
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("make", [Mimic, L1, L2], ids=["mimic", "l1", "l2"])
def test_losses_take_the_one_launch_path_and_agree_with_eager(make, monkeypatch):
    """impl="fused" with Triton kernels (as on CUDA) equals impl="eager", values and gradients."""
    from kdloss.ops import errors

    apply = errors.ErrorLevelsFunction.apply
    seen = []
    monkeypatch.setattr(errors.ErrorLevelsFunction, "apply",
                        lambda power, scales, kernels, *pairs: seen.append(len(pairs) // 2)
                        or apply(power, scales, "triton", *pairs))
    g = torch.Generator().manual_seed(3)
    if make is Mimic:
        s = [torch.randn(shape, generator=g).to(DEVICE).requires_grad_(True) for shape in SHAPES[:2]]
        t = [torch.randn(shape, generator=g).to(DEVICE) for shape in SHAPES[:2]]
        inputs = lambda: ([x.detach().requires_grad_(True) for x in s], t)  # noqa: E731
        leaves = lambda student: student  # noqa: E731
    else:
        def output(requires_grad):
            cls = torch.randn(2, 30, 5, generator=g).to(DEVICE).requires_grad_(requires_grad)
            box = torch.randn(2, 30, 4, 16, generator=g).to(DEVICE).requires_grad_(requires_grad)
            return DetectionOutput(cls=cls, box=box, anchors=torch.rand(30, 2), strides=torch.ones(30))
        student, teacher = output(True), output(False)

        def inputs():
            copy = DetectionOutput(cls=student.cls.detach().requires_grad_(True),
                                   box=student.box.detach().requires_grad_(True), anchors=student.anchors,
                                   strides=student.strides)
            return copy, teacher
        leaves = lambda out: [out.cls, out.box]  # noqa: E731
    results = []
    for impl in ("fused", "eager"):
        student_in, teacher_in = inputs()
        value = make(impl=impl)(student_in, teacher_in)
        value.backward()
        results.append((value, [x.grad for x in leaves(student_in)]))
    assert seen == [2]  # one Function (one launch each way) for both levels
    (fused, fused_grads), (eager, eager_grads) = results
    torch.testing.assert_close(fused, eager, rtol=1e-6, atol=1e-7)
    for a, b in zip(fused_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_mgd_takes_one_launch_for_all_levels_and_agrees_with_eager(monkeypatch):
    """MGD's fused path: the generation convs level by level, then one error sum for every level, with the
    same masks as eager (one seeded generator); values and the gradients of the students and the convs."""
    from kdloss.functional.mgd import mgd
    from kdloss.ops import errors

    apply = errors.ErrorLevelsFunction.apply
    seen = []
    monkeypatch.setattr(errors.ErrorLevelsFunction, "apply",
                        lambda power, scales, kernels, *pairs: seen.append(len(pairs) // 2)
                        or apply(power, scales, "triton", *pairs))
    g = torch.Generator().manual_seed(5)
    shapes = [(2, 4, 9, 9), (2, 6, 5, 5), (2, 8, 3, 3)]
    students = [torch.randn(shape, generator=g).to(DEVICE) for shape in shapes]
    teachers = [torch.randn(shape, generator=g).to(DEVICE) for shape in shapes]
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(c, c, 3, padding=1)).to(DEVICE) for _, c, _, _ in shapes]
    results = []
    for impl in ("fused", "eager"):
        for net in nets:
            net.zero_grad()
        leaves = [s.clone().requires_grad_(True) for s in students]
        value = mgd(leaves, teachers, nets, alpha_mgd=0.1, lambda_mgd=0.5,
                    generator=torch.Generator(device=DEVICE).manual_seed(11), impl=impl)
        value.backward()
        results.append((value, [x.grad for x in leaves] + [p.grad.clone() for net in nets for p in net.parameters()]))
    assert seen == [3]
    (fused, fused_grads), (eager, eager_grads) = results
    torch.testing.assert_close(fused, eager, rtol=1e-6, atol=1e-7)
    for a, b in zip(fused_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist on CUDA only")
def test_no_host_sync_on_cuda():
    students, teachers = levels(torch.float32)
    torch.cuda.set_sync_debug_mode("error")
    try:
        error_levels_fused(students, teachers, SCALES, 2, kernels="triton").backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# rows longer than one block, short ones, ragged; four levels: every branch of the dispatch
CWD_SHAPES = [(2, 4, 40, 40), (2, 8, 5, 7), (2, 16, 3, 3), (1, 3, 9, 2)]


def official_cwd_level(s, t, tau):
    """open-mmlab/mmrazor, mmrazor/models/losses/cwd.py, ``ChannelWiseDivergence.forward`` written out: a softmax
    over H·W per channel map, ``Σ p_t·log p_t − p_t·log_softmax(s/tau)``, · tau² / (C·N)."""
    n, c, h, w = s.shape
    softmax_t = torch.softmax(t.reshape(-1, h * w) / tau, dim=1)
    log_softmax = torch.nn.LogSoftmax(dim=1)
    loss = torch.sum(softmax_t * log_softmax(t.reshape(-1, h * w) / tau)
                     - softmax_t * log_softmax(s.reshape(-1, h * w) / tau)) * tau**2
    return loss / (c * n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cwd_one_launch_matches_the_official_formula(dtype, monkeypatch):
    from kdloss import CWD

    launches = []
    launch = triton_levels._cwd_launch
    monkeypatch.setattr(triton_levels, "_cwd_launch", lambda *args: launches.append(len(args[0])) or launch(*args))
    monkeypatch.setattr("kdloss.ops.cwd.select_kernels", lambda *args, **kwargs: "triton")  # as on CUDA
    g = torch.Generator().manual_seed(5)
    students = [(torch.randn(shape, generator=g) * 3).to(dtype).to(DEVICE).requires_grad_(True)
                for shape in CWD_SHAPES]
    teachers = [(torch.randn(shape, generator=g) * 3).to(dtype).to(DEVICE) for shape in CWD_SHAPES]
    value = CWD(tau=2.0, impl="fused")(students, teachers)
    (value * 0.6).backward()
    assert launches == [4, 4]  # the four levels in one launch each way
    reference = [s.detach().double().requires_grad_(True) for s in students]
    expected = sum(official_cwd_level(s, t.double(), 2.0) for s, t in zip(reference, teachers))
    (expected * 0.6).backward()
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    # p_s − p_t cancels where the two softmaxes agree: float32 leaves ~1e-12 there, so an absolute floor too
    tolerance = {"rtol": GRAD_TOLERANCE[dtype]["rtol"] if dtype == torch.bfloat16 else 1e-4, "atol": 1e-9}
    for s, r in zip(students, reference):
        assert s.grad.dtype == dtype
        torch.testing.assert_close(s.grad, r.grad.to(dtype), **tolerance)


def test_cwd_empty_level_beside_full_ones(monkeypatch):
    from kdloss.functional import cwd

    monkeypatch.setattr("kdloss.ops.cwd.select_kernels", lambda *args, **kwargs: "triton")
    g = torch.Generator().manual_seed(6)
    shapes = [(0, 4, 6, 6), (2, 4, 6, 6)]
    students = [torch.randn(shape, generator=g).to(DEVICE).requires_grad_(True) for shape in shapes]
    teachers = [torch.randn(shape, generator=g).to(DEVICE) for shape in shapes]
    value = cwd(students, teachers, 1.0, impl="fused")
    value.backward()
    expected = official_cwd_level(students[1].detach().double(), teachers[1].double(), 1.0)
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    assert tuple(students[0].grad.shape) == shapes[0] and tuple(students[1].grad.shape) == shapes[1]
