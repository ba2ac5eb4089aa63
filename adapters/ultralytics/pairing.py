"""Paired statistics over seeds: each seed pairs a method's run with the baseline's of the same initialisation
and data order; the summary rows of ``kdloss experiment``'s table."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from kdloss.adapters.ultralytics.machine import names_no_cpu_model, same_machine

if TYPE_CHECKING:
    from kdloss.adapters.ultralytics.experiment import RunResult


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
    baseline = {r.seed: r for r in results if r.method == reference}
    mixed: dict[str, list[int]] = {}
    for r in results:
        other = baseline.get(r.seed)
        if r.method != reference and other is not None and not made_together(r, other):
            mixed.setdefault(r.method, []).append(r.seed)
    return mixed


def made_together(first: RunResult, second: RunResult) -> bool:
    """Whether two runs can pair exactly: made on one machine (:func:`same_machine`), or either result written
    before machines were recorded (such a result never counts as different)."""
    return not (first.machine and second.machine) or same_machine(first.machine, second.machine)


def machine_groups(results: list[RunResult]) -> list[list[RunResult]]:
    """``results`` split by the machine each run was made on (:func:`same_machine`), groups and runs in their
    order, so that the same (method, seed) made on two machines is neither paired across them nor counted
    twice. A group is named by the most specific fingerprint among its runs (an older one, without the CPU's
    model, gives way to the first newer one that matches it, and then matches nothing else). A run without a
    recorded machine (written before machines were recorded) and a group of such runs join where they add no
    second run of one (method, seed)."""
    groups: list[tuple[str | None, list[RunResult]]] = []
    for run in results:
        home = _home(groups, run)
        if home is None:
            groups.append((run.machine, [run]))
            continue
        machine, group = groups[home]
        group.append(run)
        if machine is None or (run.machine and names_no_cpu_model(machine)):
            groups[home] = (run.machine or machine, group)
    return [group for _, group in groups]


def _home(groups: list[tuple[str | None, list[RunResult]]], run: RunResult) -> int | None:
    """The index of the group ``run`` joins (:func:`machine_groups`): the first of its machine, else, with an
    unknown machine on either side, the first to which it adds no second (method, seed); ``None``: a new one."""
    if run.machine is not None:
        for i, (machine, _) in enumerate(groups):
            if machine is not None and same_machine(machine, run.machine):
                return i
    for i, (machine, group) in enumerate(groups):
        if (run.machine is None or machine is None) and all((r.method, r.seed) != (run.method, run.seed)
                                                            for r in group):
            return i
    return None


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
