"""docs/evidence/scripts/pretrained_tables.py: the search's choice follows the rule written before it ran
(docs/experiments/pretrained-starts.md, "Decision rule"), and the tables pair seeds. Nothing here trains."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "docs" / "evidence" / "scripts"))
from pretrained_tables import (
    by_machine,
    choose,
    choose_above,
    choose_clear,
    committed_round3_runs,
    method_table,
    pairing_group,
    reproduced,
    with_committed,
)

from kdloss.adapters.ultralytics.experiment import RunResult, run_name

BASE = {0: 0.50, 1: 0.52, 2: 0.51}


def runs(gains: dict[str, tuple[float, float, float]]) -> list[RunResult]:
    out = [RunResult("yolov8n", "none", s, "w", 8.2, 3, 0.7, v, "test") for s, v in BASE.items()]
    for method, deltas in gains.items():
        out += [RunResult("yolov8n", method, s, "w", 8.2, 3, 0.7, BASE[s] + d, "test") for s, d in enumerate(deltas)]
    return out


def test_the_highest_mean_gain_is_chosen():
    found = runs({"bckd": (-0.01, 0.0, 0.01), "bckd:x=1": (0.004, 0.003, 0.005), "cwd": (0.001, 0.002, 0.0)})
    chosen, reasons = choose(found, ("bckd", "bckd:x=1", "cwd"))
    assert chosen == "bckd:x=1" and "no cheaper candidate" in reasons[-1]


def test_a_cheaper_candidate_within_one_se_wins():
    # bckd+cwd: +0.005 ± 0.0029; the box term alone +0.003 is within 1 SE of it and cheaper
    found = runs({"bckd+cwd": (0.0, 0.005, 0.01), "bckd:bckd_cls_weight=0": (0.003, 0.002, 0.004)})
    chosen, _ = choose(found, ("bckd+cwd", "bckd:bckd_cls_weight=0"))
    assert chosen == "bckd:bckd_cls_weight=0"
    # not within 1 SE: the best stays
    found = runs({"bckd+cwd": (0.009, 0.010, 0.011), "bckd:bckd_cls_weight=0": (0.003, 0.002, 0.004)})
    assert choose(found, ("bckd+cwd", "bckd:bckd_cls_weight=0"))[0] == "bckd+cwd"


def test_an_unfinished_search_chooses_nothing():
    found = runs({"cwd": (0.01, 0.02, 0.03)})[:-1]
    with pytest.raises(SystemExit, match="not finished: cwd has 2 of 3"):
        choose(found, ("cwd",))


def test_round_two_goes_forward_only_above_the_incumbent():
    incumbent = "bckd:schedule=cosine"
    found = runs({incumbent: (0.003, 0.004, 0.0035), "a": (0.001, 0.002, 0.0), "b": (0.004, 0.005, 0.0045)})
    assert choose_above(found, ("a", "b"), incumbent)[0] == "b"
    found = runs({incumbent: (0.003, 0.004, 0.0035), "a": (0.001, 0.002, 0.0), "b": (0.003, 0.004, 0.0035)})
    chosen, reasons = choose_above(found, ("a", "b"), incumbent)  # equal is not above
    assert chosen is None and "nothing chosen" in reasons[-1]


def test_round_three_goes_forward_only_two_se_above_zero():
    # b: +0.004 ± 0.0006 (6.9 SE) beats a: +0.001
    found = runs({"a": (0.001, 0.002, 0.0), "b": (0.004, 0.005, 0.003)})
    chosen, reasons = choose_clear(found, ("a", "b"), min_se=2.0)
    assert chosen == "b" and "6.9 SE" in reasons[-1]
    # b: +0.004 ± 0.0031 (1.3 SE): the highest, but not clear of zero
    found = runs({"a": (0.001, 0.002, 0.0), "b": (0.0, 0.002, 0.010)})
    chosen, reasons = choose_clear(found, ("a", "b"), min_se=2.0)
    assert chosen is None and "nothing chosen" in reasons[-1]
    # every method below zero: nothing, whatever the SE
    found = runs({"a": (-0.004, -0.005, -0.003), "b": (-0.002, -0.0021, -0.0019)})
    assert choose_clear(found, ("a", "b"), min_se=2.0)[0] is None


def test_the_table_pairs_by_seed():
    lines = method_table(runs({"bckd": (0.01, 0.02, 0.03)}), ("none", "bckd"))
    assert lines[-1] == "| `bckd` | 3 | 0.5300 ± 0.0173 | +0.0200 ± 0.0058 (3/3) |"


def test_round_four_pairs_against_round_three_as_committed():
    committed = committed_round3_runs(("none", "bckd"))
    pairs = sorted((r.method, r.seed) for r in committed)
    assert pairs == [("bckd", 0), ("bckd", 1), ("bckd", 2), ("none", 0), ("none", 1), ("none", 2)]
    assert all(0.0 < r.map50_95 < 1.0 for r in committed)


def test_a_run_trained_again_is_set_against_the_committed_one():
    committed = runs({})
    same = RunResult("yolov8n", "none", 0, "w", 8.2, 3, 0.7, BASE[0], "test")
    moved = RunResult("yolov8n", "none", 1, "w", 8.2, 3, 0.7, BASE[1] + 1e-4, "test")
    unknown = RunResult("yolov8n", "bckd", 0, "w", 8.2, 3, 0.7, 0.6, "test")
    lines = reproduced(committed, [same, moved, unknown])
    assert len(lines) == 2
    assert lines[0].endswith("identical") and lines[1].endswith("differs by +1.00e-04")


def test_a_run_committed_in_an_earlier_checkout_counts_unless_trained_here():
    here = runs({"bckd": (0.01, 0.02, 0.03)})[3:4]  # bckd seed 0, trained in this checkout
    committed = [RunResult("yolov8n", "bckd", s, "w", 8.2, 3, 0.7, 0.9, "test") for s in (0, 1)]
    committed.append(RunResult("yolov8n", "none", 0, "w", 8.2, 3, 0.7, 0.8, "test"))  # another method, same seed
    every, taken = with_committed(here, committed)
    assert [(r.method, r.seed, r.map50_95) for r in every] == [("bckd", 0, BASE[0] + 0.01), ("bckd", 1, 0.9),
                                                              ("none", 0, 0.8)]
    assert [(r.method, r.seed) for r in taken] == [("bckd", 1), ("none", 0)]


def test_round_four_keeps_every_run_a_later_checkout_needs(tmp_path, monkeypatch):
    """write_round4 writes back the runs it carried in, a confirmation's finished `none` runs before any
    distilled one exists, and round 3's runs trained again (under their own target)."""
    import json
    from dataclasses import asdict

    import pretrained_tables

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    round3 = [{**asdict(r), "target": "shapes-100"} for r in runs({"bckd": (0.01, 0.02, 0.03)})]
    (docs / "pretrained-starts-round3-runs.json").write_text(json.dumps(round3))
    method = "bckd:unlabeled=images"
    earlier = [{**asdict(RunResult("yolov8n", method, 1, "w", 8.2, 3, 0.7, 0.56, "test")), "target": "shapes-100"},
               {**asdict(RunResult("yolov8n", "none", 0, "w", 8.2, 3, 0.7, 0.40, "test")), "target": "dense-100"}]
    (docs / "pretrained-starts-round4-runs.json").write_text(json.dumps(earlier))
    for run in (RunResult("yolov8n", method, 0, "w", 8.2, 3, 0.7, 0.55, "test"),
                RunResult("yolov8n", "none", 0, "w", 8.2, 3, 0.7, BASE[0], "test")):
        folder = out / "shapes-100" / f"{run.method}-seed{run.seed}"
        folder.mkdir(parents=True)
        (folder / "kdloss_result.json").write_text(json.dumps(asdict(run)))
    monkeypatch.setattr(pretrained_tables, "DOCS", docs)

    tables = pretrained_tables.write_round4(out, None, None, method)
    written = {(row["target"], row["method"], row["seed"]): row["map50_95"]
               for row in json.loads((docs / "pretrained-starts-round4-runs.json").read_text())}
    assert written == {("shapes-100", method, 0): 0.55, ("shapes-100", method, 1): 0.56,
                       ("shapes-100-rebuilt", "none", 0): BASE[0], ("dense-100", "none", 0): 0.40}
    text = tables.read_text()
    assert f"| `{method}` | 2 | 0.5550 ± 0.0071 | +0.0450 ± 0.0050 (2/2) |" in text
    assert f"`none` seed 0: {BASE[0]!r} here, {BASE[0]!r} committed: identical" in text
    assert f"`{method}` seed 1" in text.split("From this round's committed JSON")[1]
    assert "## dense" not in text  # its distilled runs have not run yet


def test_round_five_pairs_with_round_four_and_keeps_its_runs(tmp_path, monkeypatch):
    """write_round5 sets the labelled images as unlabelled ones beside round 4's new images (from round 4's
    committed JSON), writes back the runs it carried in and a confirmation's finished `none` runs; round 4's
    confirmation tables do not take round 5's method."""
    import json
    from dataclasses import asdict

    import pretrained_tables

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    round3 = [{**asdict(r), "target": "shapes-100"} for r in runs({"bckd": (0.01, 0.02, 0.03)})]
    (docs / "pretrained-starts-round3-runs.json").write_text(json.dumps(round3))
    new_images = "bckd:unlabeled=runs/evidence/shapes-unlabeled/images/train"
    same_images = pretrained_tables.train_as_unlabeled("shapes")
    assert same_images == "bckd:unlabeled=runs/evidence/shapes/images/train"
    round4 = [{**asdict(RunResult("yolov8n", new_images, s, "w", 8.2, 3, 0.7, BASE[s] + 0.02, "test")),
               "target": "shapes-100"} for s in BASE]
    (docs / "pretrained-starts-round4-runs.json").write_text(json.dumps(round4))
    earlier = [{**asdict(RunResult("yolov8n", same_images, 1, "w", 8.2, 3, 0.7, BASE[1] + 0.01, "test")),
                "target": "shapes-100"}]
    (docs / "pretrained-starts-round5-runs.json").write_text(json.dumps(earlier))
    for project, run in (("shapes-100", RunResult("yolov8n", same_images, 0, "w", 8.2, 3, 0.7, BASE[0] + 0.03, "test")),
                         ("craters-100", RunResult("yolov8n", "none", 0, "w", 8.2, 3, 0.7, 0.30, "test"))):
        folder = out / project / run_name(run.method, run.seed)
        folder.mkdir(parents=True)
        (folder / "kdloss_result.json").write_text(json.dumps(asdict(run)))
    monkeypatch.setattr(pretrained_tables, "DOCS", docs)

    tables = pretrained_tables.write_round5(out, new_images)
    written = {(row["target"], row["method"], row["seed"]): row["map50_95"]
               for row in json.loads((docs / "pretrained-starts-round5-runs.json").read_text())}
    assert written == {("shapes-100", same_images, 0): BASE[0] + 0.03, ("shapes-100", same_images, 1): BASE[1] + 0.01,
                       ("craters-100", "none", 0): 0.30}
    text = tables.read_text()
    assert f"| `{same_images}` | 2 |" in text and "+0.0200 ± 0.0100 (2/2) |" in text
    assert "The labelled images − round 4's new ones: +0.0000 ± 0.0100 (1/2)" in text
    assert "## craters" not in text  # its distilled runs have not run yet
    assert pretrained_tables.unlabeled_or_plain(new_images)
    assert not pretrained_tables.unlabeled_or_plain(same_images)


AVX2 = "torch 2.14.1+cu130, ultralytics 8.4.190, cpu AVX2 AMD EPYC"
AVX512 = "torch 2.14.1+cu130, ultralytics 8.4.190, cpu AVX512 AMD EPYC"


def on(machine: str, found: list[RunResult], shift: float = 0.0) -> list[RunResult]:
    return [RunResult(r.model, r.method, r.seed, r.weights, r.gflops, r.params, r.map50, r.map50_95 + shift, r.split,
                      machine=machine) for r in found]


def test_a_committed_run_of_another_machine_stays_beside_the_one_trained_here():
    here = on(AVX512, runs({"bckd": (0.01, 0.02, 0.03)})[3:4])  # bckd seed 0, trained here
    committed = on(AVX2, [RunResult("yolov8n", "bckd", 0, "w", 8.2, 3, 0.7, 0.9, "test")]) + \
        on(AVX512, [RunResult("yolov8n", "bckd", 0, "w", 8.2, 3, 0.7, 0.8, "test")])
    every, taken = with_committed(here, committed)
    assert [(r.machine, r.map50_95) for r in taken] == [(AVX2, 0.9)]  # not the AVX512 one: trained here again
    assert len(every) == 2


def test_tables_pair_within_each_machine_and_rules_take_the_fuller_one():
    """The same seeds made on two machines give one table per machine, each paired within itself; a rule is
    applied to the machine with the most paired seeds."""
    earlier = on(AVX2, runs({"bckd": (0.01, 0.0, 0.0)}))[:4]  # none 0-2 and bckd seed 0 only
    here = on(AVX512, runs({"bckd": (0.01, 0.02, 0.03)}), shift=0.1)
    lines = by_machine(earlier + here, lambda group: method_table(group, ("none", "bckd")))
    assert lines[0] == f"Made on `{AVX2}`:" and f"Made on `{AVX512}`:" in lines
    assert "| `bckd` | 1 | 0.5100 | +0.0100 (1 seed) |" in lines
    assert "| `bckd` | 3 | 0.6300 ± 0.0173 | +0.0200 ± 0.0058 (3/3) |" in lines
    assert pairing_group(earlier + here, "bckd") == here
    one = by_machine(here, lambda group: method_table(group, ("none", "bckd")))
    assert one == method_table(here, ("none", "bckd"))  # one machine: no headings


def write_results(out: Path, project: str, found: list[RunResult]) -> None:
    import json
    from dataclasses import asdict

    for run in found:
        folder = out / project / run_name(run.method, run.seed)
        folder.mkdir(parents=True)
        (folder / "kdloss_result.json").write_text(json.dumps(asdict(run)))


def test_round_four_keeps_each_machines_confirmation_in_its_own_table(tmp_path, monkeypatch):
    """A confirmation trained again on another machine: the earlier machine's committed runs stay in the JSON and
    in a table of their own, a machine without `none` yet writes no original-form table, and the rule's machine
    is named."""
    import json
    from dataclasses import asdict

    import pretrained_tables

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    round3 = [{**asdict(r), "target": "shapes-100"} for r in on(AVX2, runs({"bckd": (0.01, 0.02, 0.03)}))]
    (docs / "pretrained-starts-round3-runs.json").write_text(json.dumps(round3))
    method = "bckd:unlabeled=runs/evidence/shapes-unlabeled/images/train"
    earlier = on(AVX2, runs({method: (0.01, 0.0, 0.0)}))[:4]  # pruned: none 0-2, the method's seed 0
    (docs / "pretrained-starts-round4-runs.json").write_text(
        json.dumps([{**asdict(r), "target": "shapes-pruned-100"} for r in earlier]))
    trained_here = [RunResult("yolov8n", method, 1, "w", 4.0, 3, 0.7, 0.6, "test")]
    write_results(out, "shapes-pruned-100", on(AVX512, trained_here))
    monkeypatch.setattr(pretrained_tables, "DOCS", docs)
    monkeypatch.setattr(pretrained_tables, "evaluate",
                        lambda *a, **k: RunResult("yolov8s", "teacher", 0, "t", 28.6, 11, 0.9, 0.7, "test"))

    text = pretrained_tables.write_round4(out, lambda target: "data", lambda target: "teacher", method).read_text()
    rows = json.loads((docs / "pretrained-starts-round4-runs.json").read_text())
    pruned = sorted((r["machine"], r["method"], r["seed"]) for r in rows if r["target"] == "shapes-pruned-100")
    assert pruned == sorted([(AVX512, method, 1)] + [(AVX2, r.method, r.seed) for r in earlier])
    section = text.split("## the pruned student")[1]
    assert f"Made on `{AVX512}`:" in section and f"Made on `{AVX2}`:" in section
    assert section.count("In the original project's form") == 1  # AVX512 has no `none` yet
    assert f"The rule reads the runs made on `{AVX2}`" in section
    assert f"| `{method}` | 1 | 0.5100 | +0.0100 (1 seed) |" in section


def test_round_five_pairs_with_none_trained_again_on_its_machine(tmp_path, monkeypatch):
    """Round 5 on another machine than round 3's: `none` trained again there pairs with the method, the rule
    reads that machine, and the JSON keeps those `none` runs for a later checkout."""
    import json
    from dataclasses import asdict

    import pretrained_tables

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    round3 = [{**asdict(r), "target": "shapes-100"} for r in on(AVX2, runs({"bckd": (0.01, 0.02, 0.03)}))]
    (docs / "pretrained-starts-round3-runs.json").write_text(json.dumps(round3))
    method = pretrained_tables.train_as_unlabeled("shapes")
    write_results(out, "shapes-100", on(AVX512, runs({method: (0.004, 0.005, 0.003)}), shift=0.1))
    monkeypatch.setattr(pretrained_tables, "DOCS", docs)

    paired_here = pretrained_tables.round4_runs(out, method, committed=pretrained_tables.ROUND5_JSON)
    assert {r.machine for r in paired_here} == {AVX512} and len(paired_here) == 6
    chosen, reasons = choose_clear(paired_here, (method,), min_se=2.0)
    assert chosen == method and "+0.0040" in reasons[0]
    text = pretrained_tables.write_round5(out, "bckd:unlabeled=runs/evidence/shapes-unlabeled/images/train").read_text()
    assert f"The rule reads the runs made on `{AVX512}`" in text
    rows = json.loads((docs / "pretrained-starts-round5-runs.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in rows if r["machine"] == AVX512) == sorted(
        [("none", s) for s in BASE] + [(method, s) for s in BASE])
    # in the next checkout, with no run folders, the committed rows still pair on that machine
    import shutil
    shutil.rmtree(out)
    again = pretrained_tables.round4_runs(out, method, committed=pretrained_tables.ROUND5_JSON)
    assert sorted((r.method, r.seed, r.machine) for r in again) == sorted((r.method, r.seed, r.machine)
                                                                         for r in paired_here)


def test_round_five_sets_the_pruned_student_beside_round_fours_method(tmp_path, monkeypatch):
    """The pruned student's confirmation: round 5's method paired with `none` and beside round 4's method (both
    from round 4's committed JSON), all on one machine; round 5's JSON keeps `none` and its own method's runs,
    not round 4's method."""
    import json
    from dataclasses import asdict

    import pretrained_tables

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    (docs / "pretrained-starts-round3-runs.json").write_text(json.dumps(
        [{**asdict(r), "target": "shapes-100"} for r in on(AVX2, runs({}))]))
    new_images = "bckd:unlabeled=runs/evidence/shapes-unlabeled/images/train"
    same_images = pretrained_tables.train_as_unlabeled("shapes")
    round4 = on(AVX512, runs({new_images: (0.015, 0.012, 0.018)}))
    (docs / "pretrained-starts-round4-runs.json").write_text(json.dumps(
        [{**asdict(r), "target": "shapes-pruned-100"} for r in round4]))
    write_results(out, "shapes-pruned-100", on(AVX512, runs({same_images: (0.004, 0.006, 0.002)}))[3:])
    monkeypatch.setattr(pretrained_tables, "DOCS", docs)

    text = pretrained_tables.write_round5(out, new_images).read_text()
    section = text.split("## the pruned student: not retuned")[1]
    assert "confirm5 pruned" in section
    assert f"| `{new_images}` | 3 |" in section and "+0.0150 ± 0.0017 (3/3)" in section
    assert f"| `{same_images}` | 3 |" in section and "+0.0040 ± 0.0012 (3/3)" in section
    assert section.index(f"`{new_images}`") < section.index(f"`{same_images}`")
    rows = json.loads((docs / "pretrained-starts-round5-runs.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in rows if r["target"] == "shapes-pruned-100") == sorted(
        [("none", s) for s in BASE] + [(same_images, s) for s in BASE])
