"""Which machine a run was made on: floating point differs between setups and moves single runs, so runs from
two setups are not paired silently."""

from __future__ import annotations


def machine_fingerprint(device: str | int | list | None = None) -> str:
    """The setup a run's floating point depends on besides its seed, e.g. ``"torch 2.14.1, ultralytics 8.4.9,
    cpu AVX512 Intel(R) Xeon(R) Processor"`` (the vector instruction set torch dispatches its CPU kernels to,
    and the CPU's model) or ``"..., cuda NVIDIA H200"``. ``device`` as ultralytics takes it: ``None``, ``"cpu"``,
    ``0``, ``"1"``, ``"0,1"``, ``[0, 1]``, ``"cuda:1"``, ``"mps"``. Runs with different fingerprints come from
    different setups and should not be paired; one fingerprint does not promise identical runs (finer CPU
    features, thread counts and library builds are not in it)."""
    import torch
    import ultralytics

    if isinstance(device, (list, tuple)):
        device = device[0] if device else None
    first = ("" if device is None else str(device)).lower().replace(" ", "").split(",")[0]
    if first.isdigit() or first.startswith("cuda"):
        index = first.rpartition(":")[2]
        kind, index = "cuda", int(index) if index.isdigit() else 0
    elif first in ("", "cpu"):
        kind, index = ("cuda" if first == "" and torch.cuda.is_available() else "cpu"), 0
    else:  # mps, xpu, ...
        kind, index = first.partition(":")[0], None
    if kind == "cuda" and not torch.cuda.is_available():
        kind = "cpu"
    if kind == "cuda":
        where = f"cuda {torch.cuda.get_device_name(index)}"
    elif kind == "cpu":
        where = f"cpu {torch.backends.cpu.get_cpu_capability()} {_cpu_name()}"
    else:
        where = f"{kind} {_cpu_name()}"
    return f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, {where}"


# platform.machine() values: the word that ended a CPU fingerprint before the CPU's model was recorded
_ARCHITECTURES = ("x86_64", "amd64", "i386", "i686", "aarch64", "arm64", "armv7l", "ppc64le", "s390x", "riscv64")
_NO_MODEL_NAME = " (no model name)"  # ends a CPU fingerprint where the CPU's model is not known


def same_machine(first: str, second: str) -> bool:
    """Whether two :func:`machine_fingerprint` values name one setup. Fingerprints written before kdloss recorded
    the CPU's model end in its architecture instead (``"..., cpu AVX512 x86_64"``). Such a one matches a
    fingerprint that names a CPU model and is equal to it up to that last word: the older record does not say
    which CPU it ran on, so a run on another CPU with the same versions and instruction set is not told apart."""
    if first == second:
        return True
    for older, newer in ((first, second), (second, first)):
        head, _, last = older.rpartition(" ")
        model = newer.removeprefix(head + " ") if newer.startswith(head + " ") else None
        if last.lower() in _ARCHITECTURES and model and model.lower() not in _ARCHITECTURES and \
                not model.endswith(_NO_MODEL_NAME):
            return True
    return False


def names_no_cpu_model(fingerprint: str) -> bool:
    """Whether a :func:`machine_fingerprint` predates the CPU's model in it (ends in the architecture, e.g.
    ``"..., cpu AVX512 x86_64"``): it matches several newer, more specific fingerprints (:func:`same_machine`)."""
    return fingerprint.rpartition(" ")[2].lower() in _ARCHITECTURES


def _cpu_name() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what ``platform`` knows, marked so that it is never
    taken for an older fingerprint's bare architecture (:func:`same_machine`)."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}{_NO_MODEL_NAME}"
