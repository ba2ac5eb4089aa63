"""``kdloss experiment``'s markdown table and paired plot, from the summary rows (:mod:`.pairing`)."""

from __future__ import annotations

from pathlib import Path


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
