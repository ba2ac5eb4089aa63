"""The pretrained-start experiment's tables (docs/experiments/pretrained-starts.md), from the runs'
``kdloss_result.json`` files under ``runs/evidence/pretrained/``:

    .venv/bin/python docs/evidence/scripts/pretrained_starts.py tables

writes ``docs/experiments/pretrained-starts-tables.md`` (every table, each under the command that made its runs)
and ``docs/experiments/pretrained-starts-runs.json`` (every run). Paired per seed against ``none``, the plain
fine-tuning of the same start: mean ± SE of the differences, and how many seeds improved.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from kdloss.adapters.ultralytics.experiment import RESULT_FILE, RunResult, evaluate, run_name
from kdloss.adapters.ultralytics.pairing import machine_groups, made_together, paired_deltas, paired_statistics

DOCS = Path("docs/experiments")
STAGE = ".venv/bin/python docs/evidence/scripts/pretrained_starts.py"
ROUND1_SEEDS = (0, 1, 2)  # round 2 added seeds 3-5 on craters; round 1's tables stay on its own seeds


def write_tables(stem: str, lines: list[str], runs: list[dict]) -> Path:
    """``docs/experiments/{stem}-tables.md`` from ``lines`` and ``{stem}-runs.json`` from ``runs``; returns the
    tables' path."""
    tables = DOCS / f"{stem}-tables.md"
    tables.write_text("\n".join(lines))
    (DOCS / f"{stem}-runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    return tables


def results(project: Path) -> list[RunResult]:
    runs = sorted(project.glob(f"*/{RESULT_FILE}"))
    return [RunResult(**json.loads(path.read_text())) for path in runs]


def paired(runs: list[RunResult], method: str, reference: str) -> str:
    stats = paired_statistics(paired_deltas(runs, method, reference))
    if stats is None:
        return "—"
    mean, se, improved, count = stats
    return f"{mean:+.4f} ± {se:.4f} ({improved}/{count})" if se is not None else f"{mean:+.4f} (1 seed)"


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def methods_in_order(runs: list[RunResult], order: tuple[str, ...]) -> list[str]:
    present = {r.method for r in runs}
    return [m for m in dict.fromkeys(order) if m in present] + sorted(present - set(order))


def method_table(runs: list[RunResult], order: tuple[str, ...]) -> list[str]:
    has_builtin = any(r.method == "builtin" for r in runs)
    head = "| method | seeds | mAP50-95 (mean ± std) | − `none` (± SE, seeds improved) |"
    rule = "| --- | ---: | ---: | ---: |"
    if has_builtin:
        head, rule = head + " − `builtin` |", rule + " ---: |"
    lines = [head, rule]
    for method in methods_in_order(runs, order):
        scores = [r.map50_95 for r in runs if r.method == method]
        versus_none = paired(runs, method, "none") if method != "none" else "—"
        row = f"| `{method}` | {len(scores)} | {spread(scores)} | {versus_none} |"
        if has_builtin:
            row += f" {paired(runs, method, 'builtin') if method not in ('none', 'builtin') else '—'} |"
        lines.append(row)
    return lines


def original_form(pruned: list[RunResult], unpruned: list[RunResult], teacher: RunResult) -> list[str]:
    """The original project's second table: GFLOPs, mAP50, mAP50-95 of yolov8n, pruned, teacher, pruned + each
    distillation (means over seeds)."""
    lines = ["| model | GFLOPs (640) | mAP50 | mAP50-95 | seeds |", "| --- | ---: | ---: | ---: | ---: |"]

    def row(label: str, runs: list[RunResult]) -> str:
        return (f"| {label} | {runs[0].gflops:.2f} | {statistics.fmean(r.map50 for r in runs):.4f} | "
                f"{statistics.fmean(r.map50_95 for r in runs):.4f} | {len(runs)} |")

    lines.append(row("yolov8n, fine-tuned plain", [r for r in unpruned if r.method == "none"]))
    lines.append(row("yolov8n pruned (LAMP 0.5), fine-tuned plain", [r for r in pruned if r.method == "none"]))
    lines.append(row("yolov8s teacher", [teacher]))
    for method in methods_in_order(pruned, ()):
        if method != "none":
            lines.append(row(f"pruned + `{method}`", [r for r in pruned if r.method == method]))
    return lines


def val_curve(run: Path) -> list[float]:
    """Validation mAP50-95 after each epoch (``results.csv``)."""
    with open(run / "results.csv") as f:
        return [float(row["metrics/mAP50-95(B)"]) for row in csv.DictReader(f, skipinitialspace=True)]


def question2(shapes: Path, methods: tuple[str, ...]) -> list[str]:
    """Per-epoch gaps to ``none`` (validation mAP50-95, mean over the seeds) at the epochs the hypotheses name,
    and the probes of seed 0 (``probe.json``: gradient ratio and cosine, teacher–student disagreement)."""
    epochs = (1, 3, 10, 20, 25, 30)
    lines = ["Validation mAP50-95 minus `none`'s after the epoch, mean over seeds 0–2 (ultralytics' warm-up is",
             "epochs 1–3, `close_mosaic` epochs 21–30):", "",
             "| method | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
             "| --- |" + " ---: |" * len(epochs)]
    base = [val_curve(shapes / run_name("none", seed)) for seed in range(3)]
    for method in methods:
        curves = [val_curve(shapes / run_name(method, seed)) for seed in range(3)]
        gaps = [statistics.fmean(c[e - 1] - b[e - 1] for c, b in zip(curves, base)) for e in epochs]
        lines.append(f"| `{method}` | " + " | ".join(f"{g:+.4f}" for g in gaps) + " |")
    lines += ["", "Probes on seed 0's checkpoints (8 fixed training batches; `none`'s checkpoints probed with the "
              "default's loss; the last two rows: a yolov8n from random weights, the same teacher, "
              f"`{STAGE} probe-fresh`):", "",
              "| run | epochs with ‖∇L_kd‖/‖∇L_det‖ > 1 | ratio: epoch 1, median, epoch 30 | cosine: mean, min | "
              "disagreement: epoch 1 → 30 | teacher's top class wrong on positives: epoch 1 → 30 |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    probed = [(f"`{m}`", shapes / run_name(m, 0)) for m in ("none", *methods)]
    fresh = shapes.parent / "shapes-fresh"
    probed += [(f"`{m}`, from random weights", fresh / run_name(m, 0)) for m in ("none", "bckd")]
    for label, run in probed:
        path = run / "probe.json"
        if not path.is_file():
            lines.append(f"| {label} | not probed | | | | |")
            continue
        rows = json.loads(path.read_text())
        ratios = [r["ratio"] for r in rows]
        cosines = [r["cosine"] for r in rows]
        lines.append(f"| {label} | {sum(x > 1 for x in ratios)}/{len(ratios)} | {ratios[0]:.2f}, "
                     f"{statistics.median(ratios):.2f}, {ratios[-1]:.2f} | {statistics.fmean(cosines):+.2f}, "
                     f"{min(cosines):+.2f} | {rows[0]['disagreement']:.3f} → {rows[-1]['disagreement']:.3f} | "
                     f"{rows[0]['wrong_top']:.3f} → {rows[-1]['wrong_top']:.3f} |")
    return lines


def write(out: Path, data_of, teacher_of, search: tuple[str, ...], chosen: str | None) -> Path:
    """``data_of(target)`` and ``teacher_of(target)`` give a target's data.yaml and teacher; ``search`` the
    pre-registered candidates; ``chosen`` the one the search chose (``None`` before it)."""
    sections, every_run = [], []
    teachers, by_target = {}, {}
    for target in ("shapes", "dense", "craters"):
        runs = by_target[target] = [r for r in results(out / target)
                                    if r.seed in ROUND1_SEEDS and r.method in ("none", "builtin", *search, chosen)]
        if not runs:
            continue
        teachers[target] = evaluate(teacher_of(target), data_of(target), 128, "test", "teacher", 0)
        every_run += [{**asdict(r), "target": target} for r in runs]
        q1 = [r for r in runs if r.method in ("none", "builtin", "bckd")]
        sections += [f"## {target}: question 1 (teacher {teachers[target].map50_95:.4f})", "",
                     f"`{STAGE} q1 {target}`", "", *method_table(q1, ("none", "builtin", "bckd")), ""]
        if target == "shapes":
            found = [r for r in runs if r.method in ("none", "bckd", *search)]
            sections += ["## shapes: the search (question 3)", "", f"`{STAGE} search`", "",
                         *method_table(found, ("none", "bckd", *search)), ""]
            probed = ("bckd", chosen) if chosen else ("bckd",)
            sections += ["## shapes: why (question 2)", "", f"`{STAGE} probe{' ' + chosen if chosen else ''}`", "",
                         *question2(out / target, probed), ""]
        elif chosen and any(r.method == chosen for r in runs):
            confirm = [r for r in runs if r.method in ("none", chosen)]
            sections += [f"## {target}: the chosen recipe, not retuned", "", f"`{STAGE} confirm {chosen}`", "",
                         *method_table(confirm, ("none", chosen)), ""]
    pruned = [r for r in results(out / "shapes-pruned") if r.method in ("none", "builtin", "bckd", chosen)]
    if pruned and "shapes" in teachers:
        every_run += [{**asdict(r), "target": "shapes-pruned"} for r in pruned]
        command = f"{STAGE} prune" + (f" {chosen}" if chosen else "")
        sections += ["## The pruned pretrained yolov8n on shapes", "", f"`{command}`", "",
                     *method_table(pruned, ("none", "builtin", "bckd")), "", "In the original project's form:", "",
                     *original_form(pruned, by_target["shapes"], teachers["shapes"]), ""]
    header = ["# Pretrained starts: the tables", "", f"Generated by `{STAGE} tables`", "",
              "from the runs under `runs/evidence/pretrained/` (plan, rules and reading:",
              "[pretrained-starts.md](pretrained-starts.md)). Pretrained yolov8n (the built-in corpus), 30 epochs,",
              "imgsz 128, test split; paired per seed against `none`, plain fine-tuning of the same start.", ""]
    return write_tables("pretrained-starts", header + sections, every_run)


def cost(method: str) -> int:
    """The pre-registered rule's "cheaper": the box term alone < one logit loss < a feature loss added."""
    if "cwd" in method:
        return 2
    return 0 if "bckd_cls_weight=0" in method else 1


def search_statistics(runs: list[RunResult], methods: tuple[str, ...]) -> dict[str, tuple]:
    """Each method's paired (mean, SE, improved, count) over ``none``; exits if one has fewer than 3 seeds."""
    stats = {}
    for method in methods:
        found = paired_statistics(paired_deltas(runs, method, "none"))
        if found is None or found[3] < 3:
            raise SystemExit(f"the search is not finished: {method} has {0 if found is None else found[3]} of 3 seeds")
        stats[method] = found
    return stats


def described(stats: dict[str, tuple]) -> list[str]:
    return [f"{m}: {s[0]:+.4f} ± {s[1]:.4f} ({s[2]}/{s[3]})" for m, s in stats.items()]


def choose(runs: list[RunResult], search: tuple[str, ...]) -> tuple[str, list[str]]:
    """The search's choice by the rule written before it ran (docs/experiments/pretrained-starts.md): the highest
    mean paired Δ over ``none``; a cheaper candidate within 1 SE of it wins instead. Returns (choice, reasons)."""
    stats = search_statistics(runs, search)
    best = max(search, key=lambda m: stats[m][0])
    mean, se = stats[best][0], stats[best][1]
    cheaper = [m for m in search if cost(m) < cost(best) and stats[m][0] >= mean - se]
    reasons = described(stats)
    if cheaper:
        pick = min(cheaper, key=lambda m: (cost(m), -stats[m][0]))
        return pick, [*reasons, f"highest: {best}; {pick} is cheaper and within 1 SE of it"]
    return best, [*reasons, f"highest: {best}; no cheaper candidate within 1 SE ({mean - se:+.4f})"]


def choose_above(runs: list[RunResult], search: tuple[str, ...], incumbent: str) -> tuple[str | None, list[str]]:
    """Round 2's rule (docs/experiments/pretrained-starts-round2.md): the candidate with the highest mean paired Δ
    over ``none``, if that mean is above ``incumbent``'s; else ``None``. Returns (choice, reasons)."""
    stats = search_statistics(runs, (*search, incumbent))
    best = max(search, key=lambda m: stats[m][0])
    reasons = described(stats)
    if stats[best][0] > stats[incumbent][0]:
        return best, [*reasons, f"highest: {best}, above {incumbent}"]
    return None, [*reasons, f"highest: {best}, not above {incumbent}: nothing chosen"]


def write_round2(out: Path, data_of, teacher_of, search: tuple[str, ...], incumbent: str, chosen: str | None) -> Path:
    """Round 2's tables (docs/experiments/pretrained-starts-round2.md) to ``pretrained-starts-round2-tables.md``
    and its runs to ``pretrained-starts-round2-runs.json``:
    the search on shapes beside ``incumbent`` (round 1's choice), then, for ``chosen``, dense, craters (seeds
    0–5 for ``none`` and the choice) and the pruned student beside round 1's rows."""
    shapes = results(out / "shapes")
    order = ("none", incumbent, *search)
    every_run = [{**asdict(r), "target": "shapes"} for r in shapes if r.method in order]
    sections = ["## shapes: the search", "", f"`{STAGE} search2`, then `{STAGE} choose2`", "",
                *method_table([r for r in shapes if r.method in order], order), ""]
    if chosen:
        compared = ("none", chosen, incumbent, "bckd")
        for target, project in (("dense", "dense"), ("craters", "craters"), ("the pruned student", "shapes-pruned")):
            runs = [r for r in results(out / project) if r.method in compared]
            if not any(r.method == chosen for r in runs):
                continue
            every_run += [{**asdict(r), "target": project} for r in runs]
            sections += [f"## {target}: the choice, not retuned", "", f"`{STAGE} confirm2 {chosen}`", "",
                         *method_table(runs, compared), ""]
            if project == "shapes-pruned":
                teacher = evaluate(teacher_of("shapes"), data_of("shapes"), 128, "test", "teacher", 0)
                sections += ["In the original project's form:", "", *original_form(runs, shapes, teacher), ""]
    header = ["# Pretrained starts, round 2: the tables", "", f"Generated by `{STAGE} tables2`", "",
              "from the runs under `runs/evidence/pretrained/` (plan, rules and reading:",
              "[pretrained-starts-round2.md](pretrained-starts-round2.md)). Pretrained yolov8n, 30 epochs, imgsz 128,",
              "test split; paired per seed against `none`. Rows from round 1 (the default `bckd`, the cosine decay)",
              "have seeds 0–2 only; on craters `none` and the choice have seeds 0–5.", ""]
    return write_tables("pretrained-starts-round2", header + sections, every_run)


def choose_clear(runs: list[RunResult], search: tuple[str, ...], min_se: float) -> tuple[str | None, list[str]]:
    """Round 3's rule (docs/experiments/pretrained-starts-round3.md): the method with the highest mean paired Δ
    over ``none``, if that mean is more than ``min_se`` paired SEs above zero; else ``None``.
    Returns (choice, reasons)."""
    stats = search_statistics(runs, search)
    best = max(search, key=lambda m: stats[m][0])
    mean, se = stats[best][0], stats[best][1]
    reasons = described(stats)
    if mean > min_se * se:
        return best, [*reasons, f"highest: {best}, {mean / se:.1f} SE above zero (needs more than {min_se:g})"]
    return None, [*reasons, f"highest: {best}, {mean / se:.1f} SE above zero (needs more than {min_se:g}): "
                            "nothing chosen"]


def committed_rows(name: str, target: str, methods: tuple[str, ...] | None = None) -> list[RunResult]:
    """The runs on ``target`` (``shapes-100``, ``dense-100``, ...) that ``docs/experiments/{name}`` holds, of
    ``methods`` (every method if ``None``); none if the file does not exist yet."""
    path = DOCS / name
    if not path.is_file():
        return []
    return [RunResult(**{key: value for key, value in row.items() if key != "target"})
            for row in json.loads(path.read_text())
            if row["target"] == target and (methods is None or row["method"] in methods)]


def committed_runs(target: str) -> list[RunResult]:
    """Rounds 1–2's runs on ``target`` (seeds 0–2) as their tables committed them
    (``pretrained-starts-runs.json``, ``pretrained-starts-round2-runs.json``): their run folders need not be on
    this machine."""
    found = {}
    for name in ("pretrained-starts-runs.json", "pretrained-starts-round2-runs.json"):
        for run in committed_rows(name, target):
            if run.seed in ROUND1_SEEDS:
                found[(run.method, run.seed)] = run
    return list(found.values())


def write_round3(out: Path, data_of, teacher_of, search: tuple[str, ...], chosen: str | None) -> Path:
    """Round 3's tables (docs/experiments/pretrained-starts-round3.md, 100-epoch students) to
    ``pretrained-starts-round3-tables.md`` and its runs to ``pretrained-starts-round3-runs.json``: the search on
    shapes beside the 30-epoch rows of the same methods, then, for ``chosen``, dense, craters and the pruned
    student at 100 epochs."""
    long_shapes = results(out / "shapes-100")
    short_shapes = committed_runs("shapes")
    order = ("none", *search)
    every_run = [{**asdict(r), "target": "shapes-100"} for r in long_shapes if r.method in order]
    sections = ["## shapes: 100 epochs", "", f"`{STAGE} baselines3`, `{STAGE} search3`, then `{STAGE} choose3`", "",
                *method_table([r for r in long_shapes if r.method in order], order), "",
                "The same methods at 30 epochs (rounds 1–2's runs, from their committed JSON):", "",
                *method_table([r for r in short_shapes if r.method in order], order), ""]
    if chosen:
        for target, project in (("dense", "dense-100"), ("craters", "craters-100"),
                                ("the pruned student", "shapes-pruned-100")):
            runs = [r for r in results(out / project) if r.method in ("none", chosen)]
            if not any(r.method == chosen for r in runs):
                continue
            every_run += [{**asdict(r), "target": project} for r in runs]
            sections += [f"## {target}: the choice at 100 epochs, not retuned", "", f"`{STAGE} confirm3 {chosen}`",
                         "", *method_table(runs, ("none", chosen)), ""]
            if project == "shapes-pruned-100":
                teacher = evaluate(teacher_of("shapes"), data_of("shapes"), 128, "test", "teacher", 0)
                sections += ["In the original project's form:", "", *original_form(runs, long_shapes, teacher), ""]
    header = ["# Pretrained starts, round 3: the tables", "", f"Generated by `{STAGE} tables3`", "",
              "from the runs under `runs/evidence/pretrained/` (plan, rules and reading:",
              "[pretrained-starts-round3.md](pretrained-starts-round3.md)). Pretrained yolov8n, **100 epochs**, imgsz",
              "128, test split; paired per seed against `none` of the same length.", ""]
    return write_tables("pretrained-starts-round3", header + sections, every_run)


def committed_round3_runs(methods: tuple[str, ...]) -> list[RunResult]:
    """Round 3's 100-epoch shapes runs of ``methods`` as its tables committed them
    (``pretrained-starts-round3-runs.json``): their run folders need not be on this machine."""
    return committed_rows("pretrained-starts-round3-runs.json", "shapes-100", methods)


def with_committed(local: list[RunResult], committed: list[RunResult]) -> tuple[list[RunResult], list[RunResult]]:
    """``local`` runs and the ``committed`` ones that ``local`` lacks (the same method and seed made on the same
    machine): a run finished in an earlier checkout, whose folder is gone, still counts, and one made on another
    machine stays beside this checkout's (another trajectory: the tables pair it only within its machine,
    :func:`by_machine`). Returns (all runs, the committed ones taken)."""
    taken = [r for r in committed
             if not any(r.method == mine.method and r.seed == mine.seed and made_together(r, mine) for mine in local)]
    return local + taken, taken


def reproduced(committed: list[RunResult], rebuilt: list[RunResult]) -> list[str]:
    """A line for each run of ``rebuilt`` that ``committed`` also holds (same method and seed, made on the same
    machine: another machine's run is another trajectory, not a reproduction): its test mAP50-95 beside the
    committed one, and whether the two are identical."""
    lines = []
    for run in rebuilt:
        then = next((r for r in committed if (r.method, r.seed) == (run.method, run.seed) and made_together(r, run)),
                    None)
        if then is not None:
            moved = run.map50_95 - then.map50_95
            verdict = "identical" if moved == 0 else f"differs by {moved:+.2e}"
            lines.append(f"- `{run.method}` seed {run.seed}: {run.map50_95!r} here, {then.map50_95!r} committed: "
                         f"{verdict}")
    return lines


ROUND4_JSON = "pretrained-starts-round4-runs.json"
REBUILT = "shapes-100-rebuilt"  # round 3's runs trained again in a later checkout, kept in round 4's JSON


def round4_target(out: Path, project: str, keep: Callable[[str], bool], target: str | None = None,
                  committed: str = ROUND4_JSON) -> tuple[list[RunResult], list[RunResult]]:
    """Round 4's (or, with ``committed``, another round's) runs under ``project`` that ``keep(method)`` accepts:
    this checkout's, and those the round's committed JSON holds under ``target`` (``project`` unless given) for
    the (method, seed) pairs this checkout lacks. Returns (runs, the committed ones taken)."""
    local = [r for r in results(out / project) if keep(r.method)]
    return with_committed(local, [r for r in committed_rows(committed, target or project) if keep(r.method)])


def shapes_plain(out: Path, committed: str = ROUND4_JSON) -> tuple[list[RunResult], list[RunResult]]:
    """``none`` and ``bckd`` at 100 epochs on shapes, each (method, seed, machine) once: this checkout's (under
    ``shapes-100``; e.g. trained again on another machine than round 3's), those the round's ``committed`` JSON
    holds, and round 3's as committed. Returns (them all, those not round 3's: for the round's JSON)."""
    again, _ = round4_target(out, "shapes-100", lambda m: m in ("none", "bckd"), committed=committed)
    return with_committed(again, committed_round3_runs(("none", "bckd")))[0], again


def round4_runs(out: Path, method: str, committed: str = ROUND4_JSON) -> list[RunResult]:
    """Round 4's (or round 5's) shapes runs: ``none`` and ``bckd`` (:func:`shapes_plain`) and ``method``'s runs
    (this checkout's under ``shapes-100`` and those the round's ``committed`` JSON holds), of the one machine on
    which ``method`` pairs with ``none`` on the most seeds (:func:`pairing_group`)."""
    return pairing_group(shapes_plain(out, committed)[0]
                         + round4_target(out, "shapes-100", lambda m: m == method, committed=committed)[0], method)


def unlabeled_or_plain(method: str) -> bool:
    """The methods of round 4's confirmations: ``none`` and the default with unlabelled images (a folder of the
    generator's ``*-unlabeled`` images; round 5's train folders are not round 4's)."""
    return method == "none" or (method.startswith("bckd:unlabeled=") and "-unlabeled/" in method)


def carried_note(taken: list[RunResult]) -> list[str]:
    """The line that names the runs read from this round's committed JSON (none: no line)."""
    if not taken:
        return []
    seeds = ", ".join(f"`{r.method}` seed {r.seed}" for r in taken)
    return [f"From this round's committed JSON (finished in an earlier checkout): {seeds}.", ""]


def machines_line(runs: list[RunResult]) -> str:
    """The machines ``runs`` were evaluated on, one line (pairs are exact only within one)."""
    return f"Machines: {'; '.join(sorted({r.machine or 'not recorded' for r in runs}))}."


def machine_of(group: list[RunResult]) -> str:
    """The machine a group of :func:`machine_groups` was made on, as its most specific run names it."""
    named = [r.machine for r in group if r.machine]
    return max(named, key=len) if named else "not recorded"


def by_machine(runs: list[RunResult], section: Callable[[list[RunResult]], list[str]],
               decided_by: str | None = None) -> list[str]:
    """``section``'s lines for ``runs``, or, where they were made on more than one machine, for each machine's
    runs under its name (:func:`machine_groups`): a seed is paired only within one machine and counted once
    in each. With ``decided_by`` (a method), a line names the machine its rule reads (:func:`pairing_group`)."""
    groups = machine_groups(runs)
    if len(groups) <= 1:
        return section(runs)
    lines = []
    for group in groups:
        lines += [f"Made on `{machine_of(group)}`:", "", *section(group)]
    if decided_by is not None:
        lines += [f"The rule reads the runs made on `{machine_of(pairing_group(runs, decided_by))}`, where "
                  f"`{decided_by}` pairs with `none` on the most seeds.", ""]
    return lines


def pairing_group(runs: list[RunResult], method: str, reference: str = "none") -> list[RunResult]:
    """The runs of the one machine on which ``method`` pairs with ``reference`` on the most seeds (the first
    such machine in ``runs``' order; none for no runs): what a decision rule is applied to."""
    return max(machine_groups(runs), key=lambda group: len(paired_deltas(group, method, reference)), default=[])


def round4_shapes(out: Path, method: str) -> tuple[list[str], list[dict]]:
    """Round 4's shapes section. Returns (its lines, the rows for the JSON: ``method``'s runs and round 3's runs
    trained again on round 3's machine, under ``REBUILT``)."""
    round3 = committed_round3_runs(("none", "bckd"))
    mine, carried = round4_target(out, "shapes-100", lambda m: m == method)
    rebuilt, _ = round4_target(out, "shapes-100", lambda m: m in ("none", "bckd"), target=REBUILT)
    rebuilt = [r for r in rebuilt if any((c.method, c.seed) == (r.method, r.seed) and made_together(c, r)
                                         for c in round3)]  # another machine's: not a rebuild (round 5's)
    runs = round3 + mine

    def section(group: list[RunResult]) -> list[str]:
        return [*method_table(group, ("none", "bckd", method)), "",
                f"With the unlabelled images − `bckd` without them: {paired(group, method, 'bckd')}", ""]

    lines = ["## shapes", "", f"`{STAGE} search4`, then `{STAGE} choose4`", "", *by_machine(runs, section, method),
             *carried_note(carried), machines_line(runs + rebuilt), ""]
    again = reproduced(round3, rebuilt)
    if again:
        lines += ["Round 3's runs trained again by the same command, against the committed ones:", "", *again, ""]
    rows = [{**asdict(r), "target": "shapes-100"} for r in mine] + [{**asdict(r), "target": REBUILT} for r in rebuilt]
    return lines, rows


def round4_confirmation(out: Path, data_of, teacher_of, title: str, project: str,
                        shapes: list[RunResult]) -> tuple[list[str], list[dict]]:
    """One confirmation's section (no lines before its distilled runs exist) and its rows for the JSON (every
    run, so that a later checkout keeps a finished ``none`` too). ``shapes``: the unpruned student's plain runs
    (:func:`shapes_plain`), for the pruned student's table in the original project's form."""
    confirmed, carried = round4_target(out, project, unlabeled_or_plain)
    rows = [{**asdict(r), "target": project} for r in confirmed]
    if not any(r.method != "none" for r in confirmed):
        return [], rows
    teacher = evaluate(teacher_of("shapes"), data_of("shapes"), 128, "test", "teacher", 0) \
        if project == "shapes-pruned-100" else None

    def section(group: list[RunResult]) -> list[str]:
        lines = [*method_table(group, ("none",)), ""]
        if teacher is not None and any(r.method == "none" for r in group):
            unpruned = [r for r in shapes if r.method == "none"]
            here = [r for r in unpruned if made_together(r, group[0])]
            lines += ["In the original project's form" + ("" if here else " (the unpruned yolov8n: made on "
                                                          f"`{machine_of(unpruned)}`)") + ":", "",
                      *original_form(group, here or unpruned, teacher), ""]
        return lines

    distilled = next(r.method for r in confirmed if r.method != "none")
    lines = [f"## {title}: not retuned", "", f"`{STAGE} confirm4`", "", *by_machine(confirmed, section, distilled),
             *carried_note(carried), machines_line(confirmed), ""]
    return lines, rows


def write_round4(out: Path, data_of, teacher_of, method: str) -> Path:
    """Round 4's tables (docs/experiments/pretrained-starts-round4.md): ``method`` (the default with unlabelled
    images) beside round 3's ``none`` and ``bckd`` at 100 epochs, then its confirmations where they ran (dense,
    the pruned student), to ``pretrained-starts-round4-tables.md``, and its runs to
    ``pretrained-starts-round4-runs.json``. ``none`` and ``bckd`` on shapes are read from round 3's committed
    JSON; any of them trained again under ``shapes-100`` are listed against it, run for run. Runs of this round
    that finished in an earlier checkout come from this round's committed JSON, and are written back to it."""
    lines, rows = round4_shapes(out, method)
    for title, project in (("dense", "dense-100"), ("the pruned student", "shapes-pruned-100")):
        section, confirmation_rows = round4_confirmation(out, data_of, teacher_of, title, project,
                                                         shapes_plain(out)[0])
        lines += section
        rows += confirmation_rows
    header = ["# Pretrained starts, round 4: the tables", "", f"Generated by `{STAGE} tables4`", "",
              "from the runs under `runs/evidence/pretrained/` (plan, rule and reading:",
              "[pretrained-starts-round4.md](pretrained-starts-round4.md)). Pretrained yolov8n, 100 epochs, imgsz 128,",
              "test split; paired per seed. On shapes, `none` and `bckd` are round 3's runs, from its committed JSON",
              "(`pretrained-starts-round3-runs.json`).", ""]
    return write_tables("pretrained-starts-round4", header + lines, rows)


ROUND5_JSON = "pretrained-starts-round5-runs.json"


def train_as_unlabeled(target: str) -> str:
    """Round 5's method on ``target``: the default with its own labelled training images as ``unlabeled=``."""
    return f"bckd:unlabeled=runs/evidence/{target}/images/train"


def write_round5(out: Path, round4_method: str) -> Path:
    """Round 5's tables (docs/experiments/pretrained-starts-round5.md): the default with the labelled training
    images as unlabelled ones, on shapes beside round 3's ``none`` and ``bckd`` and round 4's method (new
    images), then its confirmations where they ran (craters, dense, the pruned student beside round 4's method),
    to ``pretrained-starts-round5-tables.md``,
    and its runs to ``pretrained-starts-round5-runs.json``, which it reads back: a run finished in an earlier
    checkout counts (a run in this checkout's folders comes first)."""
    method = train_as_unlabeled("shapes")
    plain, again = shapes_plain(out, ROUND5_JSON)
    round4, _ = round4_target(out, "shapes-100", lambda m: m == round4_method)
    mine, carried = round4_target(out, "shapes-100", lambda m: m == method, committed=ROUND5_JSON)
    runs = plain + round4 + mine

    def section(group: list[RunResult]) -> list[str]:
        return [*method_table(group, ("none", "bckd", round4_method, method)), "",
                f"The labelled images − round 4's new ones: {paired(group, method, round4_method)}", ""]

    lines = ["## shapes", "", f"`{STAGE} search5`, then `{STAGE} choose5`", "", *by_machine(runs, section, method),
             *carried_note(carried), machines_line(runs), ""]
    rows = [{**asdict(r), "target": "shapes-100"} for r in mine + again]  # `none` trained again here, too
    confirmations = (("craters", "craters-100", "craters", ()), ("dense", "dense-100", "dense", ()),
                     ("the pruned student", "shapes-pruned-100", "shapes", (round4_method,)))
    for title, project, images, beside in confirmations:
        confirmed, taken = round4_target(out, project, lambda m, t=images: m == train_as_unlabeled(t),
                                         committed=ROUND5_JSON)
        # `none` (dense's and the pruned student's may be in round 4's JSON) and round 4's method, where beside
        plain, _ = round4_target(out, project, lambda m, b=beside: m == "none" or m in b)
        plain, plain_taken = with_committed(plain, committed_rows(ROUND5_JSON, project, ("none",)))
        rows += [{**asdict(r), "target": project} for r in plain + confirmed if r.method not in beside]
        if confirmed:
            order = ("none", *beside, train_as_unlabeled(images))
            lines += [f"## {title}: not retuned", "", f"`{STAGE} confirm5{' pruned' if beside else ''}`", "",
                      *by_machine(plain + confirmed, lambda group, o=order: [*method_table(group, o), ""],
                                  train_as_unlabeled(images)),
                      *carried_note(taken + plain_taken), machines_line(plain + confirmed), ""]
    header = ["# Pretrained starts, round 5: the tables", "", f"Generated by `{STAGE} tables5`", "",
              "from the runs under `runs/evidence/pretrained/` (plan, rule and reading:",
              "[pretrained-starts-round5.md](pretrained-starts-round5.md)). Pretrained yolov8n, 100 epochs, imgsz 128,",
              "test split; paired per seed, within one machine. On shapes, `none` and `bckd` are round 3's runs (its",
              "committed JSON) or trained again on another machine by the same command, and",
              f"`{round4_method}` round 4's.", ""]
    return write_tables("pretrained-starts-round5", header + lines, rows)
