"""Train a student with each distillation method and seed under identical settings, then tabulate.

The table is the one distillation papers report: model, GFLOPs, params, mAP50, mAP50-95 and the change
in mAP50-95 against the same student trained without a teacher (``none``), as mean ± std over seeds,
plus paired statistics: with the same seed the baseline and a distilled student share initialisation and
data order, so each seed gives one difference Δ_i = mAP(method, i) − mAP(none, i); the table reports their
mean ± standard error (std/√n), how many seeds improved, and the share of the teacher–student gap closed.
Methods: ``none`` (no teacher), ``builtin`` (ultralytics' own ``distill_model`` distillation), a logit
or feature loss (``l1``, ``l2``, ``bckd``, ``mimic``, ``mgd``, ``cwd``) or a pair joined by ``+``
(``bckd+cwd``), optionally with kdloss settings after ``:`` (``cwd:feature_weight=10``,
``bckd+cwd:tau=2:feature_weight=3``). Every run writes ``kdloss_result.json`` when it is evaluated; runs
that have one are skipped, so an interrupted experiment continues where it stopped. The file records the
machine the run was evaluated on (torch and ultralytics versions, CPU instruction set or GPU): floating point
differs between machines and moves single runs, so a pair whose two runs come from different machines is
flagged in the table and the log.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from ultralytics import YOLO
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import get_flops

from kdloss.adapters.ultralytics.api import check_paths, distill
from kdloss.adapters.ultralytics.config import FEATURE_LOSSES, LOGIT_LOSSES, DistillConfig
from kdloss.adapters.ultralytics.trainer import as_loaded_trainer

RESULT_FILE = "kdloss_result.json"


@dataclass
class RunResult:
    model: str
    method: str
    seed: int
    weights: str
    gflops: float
    params: int
    map50: float
    map50_95: float
    split: str
    task_metric: str | None = None  # "mask" or "pose" for segment and pose models
    task_map50_95: float | None = None  # that metric's mAP50-95 (box mAP stays in map50/map50_95)
    machine: str | None = None  # machine_fingerprint() of where it ran; None in results written before it existed


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


def parse_seeds(value) -> list[int]:
    """``3`` → ``[0, 1, 2]``; ``"0,4"``, ``(0, 4)`` or ``[0, 4]`` → ``[0, 4]``; one seed: ``[2]`` or ``"2,"``.

    A bare number is a count, so ``seeds=0`` (no seed at all) is an error that says how to ask for seed 0.
    """
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"seeds={value} is a count of seeds and must be at least 1; for seed {value} alone "
                             f"write seeds=[{value}]")
        return list(range(value))
    items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
    try:
        seeds = [int(item) for item in items]
    except ValueError as e:
        raise ValueError(f"seeds={value!r}: give a count (seeds=3) or a list (seeds=0,1,2 or seeds=[2])") from e
    if not seeds:
        raise ValueError(f"seeds={value!r}: no seed given")
    return seeds


def parse_method(method: str) -> dict[str, str] | None:
    """``"bckd+cwd"`` → ``{"logit_loss": "bckd", "feature_loss": "cwd"}``; ``none``/``builtin`` → ``None``.

    Settings follow ``:`` as ``key=value`` (kdloss keys, :class:`DistillConfig`):
    ``"cwd:feature_weight=10:tau=2"`` → ``{"logit_loss": "none", "feature_loss": "cwd", "feature_weight":
    10.0, "tau": 2.0}``.
    """
    losses_part, *settings = method.split(":")
    if losses_part in {"none", "builtin"}:
        if settings:
            raise ValueError(f"method {method!r}: {losses_part} takes no settings")
        return None
    losses = {"feature_loss": "none", "logit_loss": "none"}
    for part in losses_part.split("+"):
        key = "feature_loss" if part in FEATURE_LOSSES else "logit_loss" if part in LOGIT_LOSSES else None
        if key == "logit_loss" and part != "none" and losses[key] != "none" and part not in losses[key].split("+"):
            losses[key] += f"+{part}"  # several logit losses: bckd+ld
            continue
        if key is None or part == "none" or losses[key] != "none":
            raise ValueError(f"method {method!r}: use none, builtin, one of {LOGIT_LOSSES[:-1]} and/or one of "
                             f"{FEATURE_LOSSES[:-1]} joined by '+', e.g. bckd+cwd, then optional settings "
                             "such as cwd:feature_weight=10")
        losses[key] = part
    values = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if not value or key not in DistillConfig.keys() or key in losses:
            raise ValueError(f"method {method!r}: setting {setting!r} is not key=value with a kdloss key other "
                             f"than the losses ({', '.join(k for k in DistillConfig.keys() if k not in losses)})")
        values[key] = value
    parsed = DistillConfig.from_dict({**losses, **values})  # validates and converts the values
    return {**losses, **{key: getattr(parsed, key) for key in values}}


def run_name(method: str, seed: int) -> str:
    """Folder of one run: ``bckd+cwd:tau=2`` seed 0 → ``bckd_cwd-tau2-seed0``."""
    name = method.replace("+", "_").replace(":", "-").replace("=", "").replace(",", "_")
    return f"{name}-seed{seed}"


def evaluation_split(data: str | Path) -> str:
    """``test`` when the dataset yaml names a test split, else ``val``."""
    from ultralytics.data.utils import check_det_dataset

    return "test" if check_det_dataset(str(data)).get("test") else "val"


def evaluate(weights: str | Path, data: str | Path, imgsz: int, split: str, method: str, seed: int,
             device: str | None = None) -> RunResult:
    model = YOLO(str(weights))
    metrics = model.val(data=str(data), imgsz=imgsz, split=split, plots=False, verbose=False, device=device,
                        batch=16, workers=0)
    name = Path(str(model.model.yaml.get("yaml_file", weights))).stem
    task_metric = next((label for attr, label in (("seg", "mask"), ("pose", "pose")) if hasattr(metrics, attr)), None)
    task_map = float(getattr(metrics, "seg" if task_metric == "mask" else "pose").map) if task_metric else None
    return RunResult(model=name, method=method, seed=seed, weights=str(weights),
                     gflops=round(get_flops(model.model, 640), 3),
                     params=sum(p.numel() for p in model.model.parameters()),
                     map50=float(metrics.box.map50), map50_95=float(metrics.box.map), split=split,
                     task_metric=task_metric, task_map50_95=task_map, machine=machine_fingerprint(device))


def train_one(method: str, seed: int, student: str, teacher: str | None, data: str, project: Path,
              train_args: dict) -> Path:
    name = run_name(method, seed)
    args = {**train_args, "data": str(data), "seed": seed, "deterministic": True, "project": str(project),
            "name": name, "exist_ok": True}
    losses = parse_method(method)
    if method in ("none", "builtin"):
        model = YOLO(student)
        # a loaded (e.g. pruned) student is fine-tuned as it is, as kdloss's own methods train it
        model.train(trainer=as_loaded_trainer(model.task), **({"distill_model": str(teacher)} if method == "builtin"
                                                             else {}), **args)
    else:
        distill(student, teacher, **losses, **args)
    return project / name


def run_experiment(data: str | Path, student: str, teacher: str | None, methods: list[str], seeds: list[int],
                   project: str | Path, train: bool = True, **train_args) -> list[RunResult]:
    """Train and evaluate every (method, seed); returns the results, skipping runs already evaluated.
    ``train=False`` only reads back the runs that are done (the table of an experiment still running)."""
    for method in methods:
        parse_method(method)
        if method != "none" and not teacher:
            raise ValueError(f"method {method!r} needs teacher=...")
    check_paths(student=student, teacher=teacher, data=data)
    project = Path(project).resolve()
    split = evaluation_split(data)
    imgsz = int(train_args.get("imgsz", 640))
    results = []
    total = len(methods) * len(seeds)
    for i, (method, seed) in enumerate(((m, s) for m in methods for s in seeds), 1):
        run_dir = project / run_name(method, seed)
        done = run_dir / RESULT_FILE
        if done.exists():
            LOGGER.info(f"kdloss experiment [{i}/{total}] {method} seed {seed}: done before, skipping")
            results.append(RunResult(**json.loads(done.read_text())))
            continue
        if not train:
            LOGGER.info(f"kdloss experiment [{i}/{total}] {method} seed {seed}: not done yet, left out (train=False)")
            continue
        LOGGER.info(f"kdloss experiment [{i}/{total}] training {student} with {method}, seed {seed}")
        run_dir = train_one(method, seed, student, teacher, str(data), project, train_args)
        result = evaluate(run_dir / "weights" / "best.pt", data, imgsz, split, method, seed, train_args.get("device"))
        done.write_text(json.dumps(asdict(result), indent=1))
        results.append(result)
    return results


def run_and_summarize(data: str | Path, student: str, teacher: str | None, methods: list[str], seeds: list[int],
                      project: str | Path, train: bool = True, versus: str | None = "builtin", **train_args
                      ) -> tuple[list[RunResult], RunResult | None, list[dict]]:
    """:func:`run_experiment`, then the teacher's own evaluation (if any) and the summary rows
    (:func:`summarize`, pairing every method against ``versus`` too when it ran)."""
    results = run_experiment(data, student, teacher, methods, seeds, project, train=train, **train_args)
    teacher_result = None
    if teacher:
        teacher_result = evaluate(teacher, data, int(train_args.get("imgsz", 640)), evaluation_split(data), "teacher",
                                  0, train_args.get("device"))
    rows = summarize(results, teacher_result, versus=versus)
    for row in rows:
        for key, reference in (("cross_machine", "none"), ("versus_cross_machine", versus)):
            if row.get(key):
                LOGGER.warning(f"kdloss experiment: {row['method']} seeds {row[key]} were paired with {reference} "
                               "runs made on another machine; floating point differs between machines, so these "
                               "differences mix in that noise")
    return results, teacher_result, rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired_deltas(results: list[RunResult], method: str, reference: str = "none") -> list[float]:
    """mAP50-95 of ``method`` minus that of ``reference`` (the baseline ``none`` unless given) with the same
    seed, for every seed both have."""
    baseline = {r.seed: r.map50_95 for r in results if r.method == reference}
    return [r.map50_95 - baseline[r.seed] for r in results if r.method == method and r.seed in baseline]


def paired_statistics(deltas: list[float]) -> tuple[float, float | None, int, int] | None:
    """(mean, standard error (``None`` for one difference), how many are > 0, how many) of paired differences;
    ``None`` when there are none."""
    if not deltas:
        return None
    se = statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else None
    return statistics.fmean(deltas), se, sum(d > 0 for d in deltas), len(deltas)


def cross_machine_pairs(results: list[RunResult], reference: str = "none") -> dict[str, list[int]]:
    """``{method: [seeds]}`` where a run and the ``reference`` run of its seed (the baseline ``none`` unless
    given) were made on different machines (both recorded; results written before machines were recorded
    never count as different)."""
    baseline = {r.seed: r.machine for r in results if r.method == reference}
    mixed: dict[str, list[int]] = {}
    for r in results:
        other = baseline.get(r.seed)
        if r.method != reference and r.machine and other and not same_machine(r.machine, other):
            mixed.setdefault(r.method, []).append(r.seed)
    return mixed


def summarize(results: list[RunResult], teacher: RunResult | None = None, versus: str | None = "builtin"
              ) -> list[dict]:
    """One row per method (mean ± std over seeds) with Δ mAP50-95 against ``none``, teacher first.

    Rows of distillation methods also hold ``paired``: (mean Δ_i, standard error (``None`` for one seed),
    seeds improved, seeds paired) over the seeds shared with ``none``, and ``gap_closed``: mean Δ_i over the
    teacher's lead on the baseline's mean (``None`` without a teacher or a lead), and ``cross_machine``: the
    paired seeds whose two runs were made on different machines (see :func:`cross_machine_pairs`). When the
    results hold the method ``versus`` (ultralytics' ``builtin`` unless given; ``None``: no such pairing), the
    other distillation methods' rows also hold ``versus``: ``(versus, statistics)``, their paired difference
    from it over the seeds both ran (:func:`paired_statistics`, ``None`` where they share no seed), and
    ``versus_cross_machine``, the seeds of those pairs made on different machines."""
    rows = []
    if teacher is not None:
        rows.append({"model": f"{teacher.model} teacher", "method": "teacher",
                     "gflops": teacher.gflops, "params": teacher.params, "map50": (teacher.map50, 0.0),
                     "map50_95": (teacher.map50_95, 0.0), "seeds": 1, "delta": None, "paired": None,
                     "gap_closed": None, **_task_metric([teacher])})
    methods = list(dict.fromkeys(r.method for r in results))
    baseline = [r.map50_95 for r in results if r.method == "none"]
    base_mean = statistics.fmean(baseline) if baseline else None
    gap = teacher.map50_95 - base_mean if teacher is not None and base_mean is not None else None
    mixed = cross_machine_pairs(results)
    mixed_versus = cross_machine_pairs(results, versus) if versus else {}
    for method in methods:
        runs = [r for r in results if r.method == method]
        m5095 = _mean_std([r.map50_95 for r in runs])
        paired = paired_statistics(paired_deltas(results, method) if method != "none" else [])
        against = None
        if versus and method not in ("none", versus) and any(r.method == versus for r in results):
            against = (versus, paired_statistics(paired_deltas(results, method, versus)))
        rows.append({"model": f"{runs[0].model} {method}", "method": method, "gflops": runs[0].gflops,
                     "params": runs[0].params, "map50": _mean_std([r.map50 for r in runs]), "map50_95": m5095,
                     "seeds": len(runs), "delta": None if base_mean is None else m5095[0] - base_mean,
                     "paired": paired,
                     "gap_closed": paired[0] / gap if paired is not None and gap is not None and gap > 0 else None,
                     "cross_machine": mixed.get(method, []), "versus": against,
                     "versus_cross_machine": mixed_versus.get(method, []) if against else [], **_task_metric(runs)})
    return rows


def _task_metric(runs: list[RunResult]) -> dict:
    """``{"task_metric": "mask", "task_map50_95": (mean, std)}`` for segment/pose runs, else ``{}``."""
    if not runs or runs[0].task_metric is None or any(r.task_map50_95 is None for r in runs):
        return {}
    return {"task_metric": runs[0].task_metric, "task_map50_95": _mean_std([r.task_map50_95 for r in runs])}


def markdown_table(rows: list[dict]) -> str:
    """The papers' table (mean ± std over seeds) followed by the paired columns: Δ ± SE, seeds improved
    and gap closed; then, when the rows hold ``versus`` (see :func:`summarize`), a second table of each
    method paired against that one (e.g. ultralytics' ``builtin``). Segment and pose models add their mask or
    pose mAP50-95 after the box mAP50-95 (the deltas stay on box mAP50-95)."""
    task = next((r["task_metric"] for r in rows if r.get("task_metric")), None)
    task_head = f" {task} mAP50-95 |" if task else ""
    lines = ["| model | GFLOPs (640) | params | mAP50 | mAP50-95 |" + task_head + " Δ mAP50-95 vs baseline | "
             "paired Δ ± SE | seeds improved | gap closed | seeds |",
             "| --- | ---: | ---: | ---: | ---: |" + " ---: |" * (6 if task else 5)]

    def fmt(pair: tuple[float, float], seeds: int) -> str:
        return f"{pair[0]:.4f} ± {pair[1]:.4f}" if seeds > 1 else f"{pair[0]:.4f}"

    for r in rows:
        delta = "—" if r["delta"] is None or r["method"] == "none" else f"{r['delta']:+.4f}"
        paired = r.get("paired")
        paired_text = "—" if paired is None else f"{paired[0]:+.4f}"
        if paired is not None and paired[1] is not None:
            paired_text += f" ± {paired[1]:.4f}"
        improved = "—" if paired is None else f"{paired[2]}/{paired[3]}"
        closed = "—" if r.get("gap_closed") is None else f"{100 * r['gap_closed']:.0f} %"
        task_cell = "" if not task else (f" {fmt(r['task_map50_95'], r['seeds'])} |" if r.get("task_map50_95")
                                         else " — |")
        lines.append(f"| {r['model']} | {r['gflops']:.2f} | {r['params']:,} | {fmt(r['map50'], r['seeds'])} | "
                     f"{fmt(r['map50_95'], r['seeds'])} |{task_cell} {delta} | {paired_text} | {improved} | "
                     f"{closed} | {r['seeds']} |")
    lines += _cross_machine_note(rows, "cross_machine", "a baseline")
    against = [r for r in rows if r.get("versus") and r["versus"][1] is not None]
    if against:
        reference = against[0]["versus"][0]
        lines += ["", f"Paired against {reference}, seed by seed (a mean more than 2 SE from 0 is this project's "
                  "threshold; with 3 seeds a weak one):", "",
                  f"| model | paired Δ mAP50-95 vs {reference} ± SE | seeds better |", "| --- | ---: | ---: |"]
        for r in against:
            mean, se, better, count = r["versus"][1]
            lines.append(f"| {r['model']} | {mean:+.4f}{'' if se is None else f' ± {se:.4f}'} | {better}/{count} |")
        lines += _cross_machine_note(against, "versus_cross_machine", f"a {reference} run")
    return "\n".join(lines)


def _cross_machine_note(rows: list[dict], key: str, what: str) -> list[str]:
    """The lines that name the rows' pairs made on two machines (``rows[i][key]``: their seeds), if any."""
    mixed = [f"{r['method']} (seeds {', '.join(map(str, r[key]))})" for r in rows if r.get(key)]
    if not mixed:
        return []
    return ["", f"Paired with {what} made on another machine: {'; '.join(mixed)}. Floating point differs between "
            "machines and moves single runs, so these pairs are not like for like."]


def plot_paired(rows: list[dict], path: Path) -> None:
    """Bar chart of the paired Δ mAP50-95 per method (± standard error where there are 2+ seeds), with
    the teacher's lead over the baseline as a dashed line when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = [r for r in rows if r.get("paired")]
    if not paired:
        return
    means = [r["paired"][0] for r in paired]
    errors = [r["paired"][1] or 0.0 for r in paired]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(paired)), 4), dpi=100)
    ax.bar(range(len(paired)), means, yerr=errors, capsize=4,
           color=["#dd8452" if m > 0 else "#888888" for m in means])
    ax.axhline(0, color="black", linewidth=0.8)
    teacher, none = next((r for r in rows if r["method"] == "teacher"), None), next(
        (r for r in rows if r["method"] == "none"), None)
    if teacher and none:
        ax.axhline(teacher["map50_95"][0] - none["map50_95"][0], color="#4c72b0", linestyle="--",
                   label="teacher − baseline")
        ax.legend(loc="upper right")
    labels = [f"{r['method']}\n{r['paired'][2]}/{r['paired'][3]} seeds up" for r in paired]
    ax.set_xticks(range(len(paired)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("paired Δ mAP50-95 vs baseline (± SE)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
