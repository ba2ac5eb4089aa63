"""The experiment runner and the demo, end to end at toy scale (1 epoch, imgsz 64)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdloss.adapters.ultralytics.experiment import RunResult, parse_method, parse_seeds, run_experiment, run_name
from kdloss.adapters.ultralytics.machine import machine_fingerprint, same_machine
from kdloss.adapters.ultralytics.pairing import cross_machine_pairs, machine_groups, summarize
from kdloss.adapters.ultralytics.tables import markdown_table

TINY = {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False, "amp": False, "device": "cpu",
        "verbose": False}


def test_parse_method():
    assert parse_method("bckd+cwd") == {"logit_loss": "bckd", "feature_loss": "cwd"}
    assert parse_method("mgd") == {"logit_loss": "none", "feature_loss": "mgd"}
    assert parse_method("none") is None and parse_method("builtin") is None
    assert parse_method("bckd+ld+cwd") == {"logit_loss": "bckd+ld", "feature_loss": "cwd"}
    for bad in ("cwd+mgd", "kd", "none+cwd", "bckd+bckd"):
        with pytest.raises(ValueError, match="use none, builtin"):
            parse_method(bad)


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("0,4") == [0, 4] and parse_seeds((1, 2)) == [1, 2]
    assert parse_seeds([2]) == [2] and parse_seeds((2,)) == [2] and parse_seeds("2,") == [2]
    with pytest.raises(ValueError, match="give a count"):
        parse_seeds("a,b")
    with pytest.raises(ValueError, match=r"seeds=0 is a count of seeds and must be at least 1; for seed 0 alone "
                                         r"write seeds=\[0\]"):
        parse_seeds(0)
    with pytest.raises(ValueError, match="no seed given"):
        parse_seeds([])


def test_summary_means_stds_and_deltas():
    def run(method, seed, value):
        return RunResult("yolov8n", method, seed, f"/r/{method}/weights/best.pt", 8.1, 3_000_000, value + 0.1, value,
                         "val")

    results = [run("none", 0, 0.10), run("none", 1, 0.12), run("cwd", 0, 0.13), run("cwd", 1, 0.15)]
    rows = summarize(results)
    assert [r["model"] for r in rows] == ["yolov8n none", "yolov8n cwd"]
    assert rows[1]["map50_95"][0] == pytest.approx(0.14) and rows[1]["map50_95"][1] == pytest.approx(0.0141421, 1e-4)
    assert rows[1]["delta"] == pytest.approx(0.03)
    table = markdown_table(rows)
    assert "| yolov8n cwd | 8.10 | 3,000,000 | 0.2400 ± 0.0141 | 0.1400 ± 0.0141 | +0.0300 |" in table


def test_paired_statistics_per_seed():
    """Δ_i pairs each seed with the baseline of the same seed: the spread of the baselines cancels."""
    def run(method, seed, value):
        return RunResult("yolov8n", method, seed, "w", 8.1, 3_000_000, value, value, "test")

    base = {0: 0.10, 1: 0.30, 2: 0.20, 3: 0.25}
    results = [run("none", s, v) for s, v in base.items()]
    gains = {0: 0.02, 1: 0.03, 2: -0.01, 3: 0.04}
    results += [run("cwd", s, base[s] + g) for s, g in gains.items()]
    results += [run("bckd", 5, 0.5)]  # a seed without a baseline is not paired
    teacher = run("teacher", 0, 0.4625)
    rows = {r["method"]: r for r in summarize(results, teacher)}
    mean, se, improved, count = rows["cwd"]["paired"]
    deltas = list(gains.values())
    expected_se = (sum((d - 0.02) ** 2 for d in deltas) / 3) ** 0.5 / 2
    assert mean == pytest.approx(0.02) and se == pytest.approx(expected_se) and (improved, count) == (3, 4)
    assert rows["cwd"]["gap_closed"] == pytest.approx(0.02 / (0.4625 - 0.2125))
    assert rows["bckd"]["paired"] is None and rows["none"]["paired"] is None
    single = {r["method"]: r for r in summarize(results[:1] + results[4:5])}["cwd"]  # one paired seed: no SE
    assert single["paired"] == (pytest.approx(0.02), None, 1, 1)
    assert "| +0.0200 | 1/1 |" in markdown_table([single])
    table = markdown_table(list(rows.values()))
    assert f"| +0.0200 ± {expected_se:.4f} | 3/4 | 8 % | 4 |" in table


def test_methods_are_paired_against_builtin_on_the_seeds_both_ran():
    """With ``builtin`` among the methods, a second table pairs every other distillation method with it, seed by
    seed: the comparison "more accurate than ultralytics' own distillation" needs."""
    def run(method, seed, value):
        return RunResult("yolov8n", method, seed, "w", 8.1, 3, value, value, "test")

    base = {0: 0.10, 1: 0.30, 2: 0.20}
    builtin = {0: 0.13, 1: 0.31, 2: 0.24}
    bckd = {0: 0.15, 1: 0.36, 2: 0.23, 3: 0.5}  # seed 3 has no builtin run: not paired against it
    results = ([run("none", s, v) for s, v in base.items()] + [run("builtin", s, v) for s, v in builtin.items()]
               + [run("bckd", s, v) for s, v in bckd.items()] + [run("cwd", 5, 0.3)])
    rows = {r["method"]: r for r in summarize(results)}
    differences = [bckd[s] - builtin[s] for s in builtin]  # +0.02, +0.05, -0.01
    mean = sum(differences) / 3
    se = (sum((d - mean) ** 2 for d in differences) / 2) ** 0.5 / 3 ** 0.5
    reference, (got_mean, got_se, better, count) = rows["bckd"]["versus"]
    assert reference == "builtin" and got_mean == pytest.approx(mean) and got_se == pytest.approx(se)
    assert (better, count) == (2, 3)
    assert rows["builtin"]["versus"] is None and rows["none"]["versus"] is None
    assert rows["cwd"]["versus"] == ("builtin", None)  # no shared seed: in no table
    lines = markdown_table(list(rows.values())).splitlines()
    start = lines.index("| model | paired Δ mAP50-95 vs builtin ± SE | seeds better |")
    assert lines[start + 2:] == [f"| yolov8n bckd | {mean:+.4f} ± {se:.4f} | 2/3 |"]
    assert lines[start - 2].startswith("Paired against builtin, seed by seed")
    for quiet in (summarize(results, versus=None), summarize([r for r in results if r.method != "builtin"])):
        assert all(r.get("versus") is None for r in quiet) and "Paired against" not in markdown_table(quiet)
    against_bckd = {r["method"]: r for r in summarize(results, versus="bckd")}
    assert against_bckd["builtin"]["versus"][1][0] == pytest.approx(-mean)


def test_cli_versus_pairs_against_a_method_that_ran(monkeypatch, tmp_path):
    import kdloss.adapters.ultralytics.experiment as experiment
    from kdloss.adapters.cli import experiment_command

    seen = {}

    def capture(data, student, teacher, methods, seeds, project, **kwargs):
        seen["versus"] = kwargs["versus"]
        return [], None, []

    monkeypatch.setattr(experiment, "run_and_summarize", capture)
    base = [f"data={tmp_path}/d.yaml", "student=yolov8n.yaml", f"project={tmp_path}/exp"]
    for extra, expected in ((["methods=none,bckd,builtin"], "builtin"), (["methods=none,bckd"], None),
                            (["methods=none,bckd,cwd", "versus=cwd"], "cwd"),
                            (["methods=none,bckd,builtin", "versus=none"], None)):
        experiment_command(base + extra)
        assert seen["versus"] == expected, extra
    with pytest.raises(ValueError, match="versus=mgd: not one of methods=none,bckd"):
        experiment_command([*base, "methods=none,bckd", "versus=mgd"])


def test_pairs_across_machines_are_flagged():
    """A run paired with a baseline made on another machine is named under the table; unknown machines (results
    written before machines were recorded) and one machine are not."""
    def run(method, seed, value, machine):
        return RunResult("yolov8n", method, seed, "w", 8.1, 3, value, value, "test", machine=machine)

    a, b = "torch 2.14.1, ultralytics 8.4.9, cpu AVX2 x86_64", "torch 2.14.1, ultralytics 8.4.9, cpu AVX512 x86_64"
    results = [run("none", 0, 0.1, a), run("none", 1, 0.2, a), run("none", 2, 0.3, None),
               run("bckd", 0, 0.15, a), run("bckd", 1, 0.25, b), run("bckd", 2, 0.35, b),
               run("cwd", 0, 0.11, b), run("cwd", 1, 0.21, b)]
    assert cross_machine_pairs(results) == {"bckd": [1], "cwd": [0, 1]}
    rows = {r["method"]: r for r in summarize(results)}
    assert rows["bckd"]["cross_machine"] == [1] and rows["none"]["cross_machine"] == []
    assert rows["bckd"]["paired"][3] == 3  # still paired: flagged, not dropped
    table = markdown_table(list(rows.values()))
    assert table.splitlines()[-1].startswith("Paired with a baseline made on another machine: bckd (seeds 1); cwd "
                                             "(seeds 0, 1).")
    same = [run(m, s, v, a) for m, s, v, _ in [("none", 0, 0.1, 0), ("bckd", 0, 0.2, 0)]]
    for quiet in (same, [run("none", 0, 0.1, None), run("bckd", 0, 0.2, b)]):
        assert cross_machine_pairs(quiet) == {} and "another machine" not in markdown_table(summarize(quiet))
    # pairs against builtin are checked too, and named under their own table
    versus = [run("none", 0, 0.1, a), run("builtin", 0, 0.12, b), run("bckd", 0, 0.15, a), run("mgd", 0, 0.11, b)]
    assert cross_machine_pairs(versus, "builtin") == {"none": [0], "bckd": [0]}
    rows = summarize(versus)
    assert {r["method"]: r.get("versus_cross_machine") for r in rows} == {"none": [], "builtin": [], "bckd": [0],
                                                                         "mgd": []}
    lines = markdown_table(rows).splitlines()
    first_note = next(i for i, line in enumerate(lines) if line.startswith("Paired with a baseline made"))
    assert "builtin (seeds 0); mgd (seeds 0)" in lines[first_note]
    assert first_note < lines.index("| model | paired Δ mAP50-95 vs builtin ± SE | seeds better |")
    assert lines[-1].startswith("Paired with a builtin run made on another machine: bckd (seeds 0).")


def test_runs_are_grouped_by_the_machine_they_were_made_on():
    """The same (method, seed) made on two machines lands in two groups, in the order the runs come; a run
    without a recorded machine joins the first group, and an older fingerprint its newer form's group."""
    def run(method, seed, machine):
        return RunResult("yolov8n", method, seed, "w", 8.1, 3, 0.1, 0.1, "test", machine=machine)

    versions = "torch 2.14.1, ultralytics 8.4.190"
    avx2, avx512 = f"{versions}, cpu AVX2 AMD EPYC", f"{versions}, cpu AVX512 AMD EPYC"
    results = [run("none", 0, avx2), run("none", 0, avx512), run("bckd", 0, avx512), run("bckd", 0, None),
               run("bckd", 1, f"{versions}, cpu AVX2 x86_64"), run("none", 1, avx512)]
    groups = machine_groups(results)
    assert [[(r.method, r.seed, r.machine) for r in g] for g in groups] == [
        [("none", 0, avx2), ("bckd", 0, None), ("bckd", 1, f"{versions}, cpu AVX2 x86_64")],
        [("none", 0, avx512), ("bckd", 0, avx512), ("none", 1, avx512)]]
    # an unknown machine never adds a second run of one (method, seed) to a group
    assert machine_groups([run("none", 0, None), run("none", 0, avx2), run("bckd", 0, avx2)]) == [
        [run("none", 0, None)], [run("none", 0, avx2), run("bckd", 0, avx2)]]
    assert machine_groups([run("none", 0, None), run("bckd", 0, avx2)]) == [[run("none", 0, None),
                                                                            run("bckd", 0, avx2)]]
    # an older fingerprint takes the first newer one that matches it, and then only that machine
    older, amd, intel = (f"{versions}, cpu AVX2 x86_64", f"{versions}, cpu AVX2 AMD EPYC",
                         f"{versions}, cpu AVX2 Intel(R) Xeon(R) Processor")
    groups = machine_groups([run("none", 0, older), run("bckd", 0, amd), run("bckd", 0, intel)])
    assert [[r.machine for r in g] for g in groups] == [[older, amd], [intel]]
    assert machine_groups([]) == []


def test_older_cpu_fingerprints_match_the_same_setup_with_a_model_name():
    """Runs recorded before the CPU's model was added to the fingerprint end in the architecture: they pair with
    runs of the same versions and instruction set, whatever the model, and are still told apart otherwise."""
    versions = "torch 2.14.1, ultralytics 8.4.190"
    older, newer = f"{versions}, cpu AVX512 x86_64", f"{versions}, cpu AVX512 Intel(R) Xeon(R) Processor"
    assert same_machine(older, newer) and same_machine(newer, older) and same_machine(older, older)
    assert not same_machine(older, f"{versions}, cpu AVX2 Intel(R) Xeon(R) Processor")
    assert not same_machine(older, "torch 2.11.0, ultralytics 8.4.190, cpu AVX512 Intel(R) Xeon(R) Processor")
    assert not same_machine(newer, f"{versions}, cpu AVX512 AMD EPYC 9654")
    assert not same_machine(f"{versions}, cuda NVIDIA H200", f"{versions}, cuda NVIDIA H100")
    assert not same_machine(f"{versions}, cpu DEFAULT aarch64", f"{versions}, cpu DEFAULT arm64")  # both older
    assert not same_machine(f"{versions}, cpu AVX2 x86_64", f"{versions}, cpu AVX2 i386 (no model name)")

    def run(method, seed, machine):
        return RunResult("yolov8n", method, seed, "w", 8.1, 3, 0.1, 0.1, "test", machine=machine)

    results = [run("none", 0, older), run("bckd", 0, newer), run("none", 1, older),
               run("bckd", 1, f"{versions}, cpu AVX2 AMD EPYC 9654")]
    assert cross_machine_pairs(results) == {"bckd": [1]}


def test_machine_fingerprint_names_versions_instruction_set_and_device(monkeypatch):
    import ultralytics

    from kdloss.adapters.ultralytics.machine import _cpu_name

    versions = f"torch {torch.__version__}, ultralytics {ultralytics.__version__}"
    cpu = f"{versions}, cpu {torch.backends.cpu.get_cpu_capability()} {_cpu_name()}"
    assert machine_fingerprint("cpu") == cpu and _cpu_name()
    assert machine_fingerprint("mps:0") == f"{versions}, mps {_cpu_name()}"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in (None, 0, "0", "cuda:1", [1]):  # no GPU: these run on the CPU
        assert machine_fingerprint(device) == cpu, device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"GPU{index}")
    for device, gpu in ((None, 0), (0, 0), (1, 1), ("1", 1), ("0,1", 0), ("1, 0", 1), ([1, 0], 1), ((2,), 2),
                        ("cuda:1", 1), ("cuda", 0), ("CUDA:3", 3)):
        assert machine_fingerprint(device) == f"{versions}, cuda GPU{gpu}", device
    assert machine_fingerprint("cpu") == cpu
    # an old result file, without the field, still loads
    old = {"model": "yolov8n", "method": "none", "seed": 0, "weights": "w", "gflops": 8.1, "params": 3, "map50": 0.2,
           "map50_95": 0.1, "split": "test", "task_metric": None, "task_map50_95": None}
    assert RunResult(**old).machine is None


def test_methods_carry_their_own_settings():
    assert parse_method("cwd:feature_weight=10") == {"logit_loss": "none", "feature_loss": "cwd",
                                                     "feature_weight": 10.0}
    assert parse_method("bckd+cwd:tau=2:schedule=cosine") == {"logit_loss": "bckd", "feature_loss": "cwd",
                                                              "tau": 2.0, "schedule": "cosine"}
    assert run_name("bckd+cwd:tau=2:feature_weight=0.5", 1) == "bckd_cwd-tau2-feature_weight0.5-seed1"
    assert run_name("bckd:unlabeled=/data/extra/", 0) == "bckd-unlabeled_data_extra-seed0"
    assert run_name("bckd:unlabeled=../extra", 2) == "bckd-unlabeled.._extra-seed2"
    for bad, message in (("cwd:tau", "not key=value"), ("cwd:heat=2", "not key=value with a kdloss key"),
                         ("cwd:tau=-1", "tau must be > 0"), ("builtin:tau=2", "takes no settings"),
                         ("cwd:feature_loss=mgd", "not key=value with a kdloss key")):
        with pytest.raises(ValueError, match=message):
            parse_method(bad)


@pytest.mark.slow
def test_experiment_runs_each_method_and_seed_and_resumes(tmp_path):
    from ultralytics import YOLO

    from kdloss.adapters.ultralytics.data import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "shapes", train=16, val=8, test=8, imgsz=64)
    YOLO("yolov8n.yaml").train(data=str(data), project=str(tmp_path), name="teacher", **TINY)
    teacher = tmp_path / "teacher" / "weights" / "best.pt"
    results = run_experiment(data, "yolov8n.yaml", str(teacher), ["none", "bckd+cwd"], [0, 1], tmp_path / "exp",
                             **TINY)
    assert [(r.method, r.seed) for r in results] == [("none", 0), ("none", 1), ("bckd+cwd", 0), ("bckd+cwd", 1)]
    assert all(r.split == "test" for r in results)  # the dataset has a test split
    saved = json.loads((tmp_path / "exp" / "bckd_cwd-seed1" / "kdloss_result.json").read_text())
    assert saved["method"] == "bckd+cwd" and saved["model"] == "yolov8n" and saved["gflops"] > 0
    assert saved["machine"] == machine_fingerprint("cpu")  # where it ran, to flag pairs across machines
    stamp = (tmp_path / "exp" / "none-seed0" / "weights" / "best.pt").stat().st_mtime_ns
    again = run_experiment(data, "yolov8n.yaml", str(teacher), ["none", "bckd+cwd"], [0, 1], tmp_path / "exp", **TINY)
    assert again == results  # finished runs are read back, not retrained
    assert (tmp_path / "exp" / "none-seed0" / "weights" / "best.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_demo_writes_report_plot_and_reuses_teacher(tmp_path, capsys):
    from kdloss.adapters.ultralytics.demo import run_demo

    options = {"workdir": str(tmp_path / "demo"), "epochs": 1, "teacher_epochs": 1, "imgsz": 64, "batch": 16,
               "train_images": 16, "val_images": 8, "test_images": 8, "workers": 0}
    table = run_demo(**options)
    assert "| yolov8n bckd |" in table and "| yolov8s teacher |" in table  # the default recipe
    assert "Δ mAP50-95 vs baseline" in (tmp_path / "demo" / "report.md").read_text()
    assert (tmp_path / "demo" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    teacher = tmp_path / "demo" / "teacher" / "weights" / "best.pt"
    stamp = teacher.stat().st_mtime_ns
    run_demo(**options)
    assert teacher.stat().st_mtime_ns == stamp  # re-used, not retrained
    with pytest.raises(ValueError, match=r"unknown demo option\(s\) \['epoch'\]"):
        run_demo(epoch=3)
    assert Path(options["workdir"], "results.json").exists()


def test_demo_uses_the_shipped_teacher_only_for_its_own_settings(tmp_path):
    from kdloss.adapters.ultralytics.demo import DEFAULTS, SHIPPED_TEACHER, choose_teacher

    assert SHIPPED_TEACHER.is_file()
    # the shipped checkpoint was trained with the settings the demo would train it with
    train_args = torch.load(SHIPPED_TEACHER, map_location="cpu", weights_only=False)["train_args"]
    assert (train_args["epochs"], train_args["batch"], train_args["imgsz"], train_args["seed"]) == (
        DEFAULTS["teacher_epochs"], DEFAULTS["teacher_batch"], DEFAULTS["imgsz"], 0)
    assert choose_teacher(dict(DEFAULTS), tmp_path) == SHIPPED_TEACHER
    assert choose_teacher({**DEFAULTS, "imgsz": 96}, tmp_path) is None  # other data: train a teacher
    assert choose_teacher({**DEFAULTS, "teacher_epochs": 5}, tmp_path) is None
    assert choose_teacher({**DEFAULTS, "teacher": "train"}, tmp_path) is None
    assert choose_teacher({**DEFAULTS, "teacher": str(SHIPPED_TEACHER)}, tmp_path) == SHIPPED_TEACHER
    with pytest.raises(ValueError, match=r"teacher=/missing\.pt: no such file"):
        choose_teacher({**DEFAULTS, "teacher": "/missing.pt"}, tmp_path)
    trained = tmp_path / "teacher" / "weights" / "best.pt"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"")
    assert choose_teacher(dict(DEFAULTS), tmp_path) == trained  # a teacher this workdir trained comes first


def test_train_false_reads_back_finished_runs_and_plots(tmp_path):
    """The table of an experiment still running: finished runs are read, missing ones left out, nothing
    trains; the paired plot is written."""
    from dataclasses import asdict

    import torch
    from ultralytics.nn.tasks import DetectionModel

    from kdloss.adapters.ultralytics.data import make_shapes_dataset
    from kdloss.adapters.ultralytics.experiment import run_and_summarize, run_name
    from kdloss.adapters.ultralytics.tables import plot_paired

    data = make_shapes_dataset(tmp_path / "shapes", train=2, val=2, test=2, imgsz=32)
    teacher = tmp_path / "t.pt"
    torch.save({"model": DetectionModel("yolov8n.yaml", nc=6, verbose=False), "train_args": {}}, teacher)
    for method, seed, value in (("none", 0, 0.1), ("cwd", 0, 0.15), ("none", 1, 0.2), ("cwd", 1, 0.22)):
        run = tmp_path / "exp" / run_name(method, seed)
        run.mkdir(parents=True)
        result = RunResult("yolov8n", method, seed, "w", 8.1, 3, value, value, "test")
        (run / "kdloss_result.json").write_text(json.dumps(asdict(result)))
    results, teacher_result, rows = run_and_summarize(data, "yolov8n.yaml", str(teacher), ["none", "cwd", "bckd"],
                                                      [0, 1, 2], tmp_path / "exp", train=False, imgsz=32)
    assert [(r.method, r.seed) for r in results] == [("none", 0), ("none", 1), ("cwd", 0), ("cwd", 1)]
    assert teacher_result.method == "teacher" and not (tmp_path / "exp" / "bckd-seed0").exists()
    cwd = next(r for r in rows if r["method"] == "cwd")
    assert cwd["paired"][0] == pytest.approx(0.035) and cwd["paired"][2:] == (2, 2)
    plot_paired(rows, tmp_path / "paired.png")
    assert (tmp_path / "paired.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("value", "methods"), [("none", ["none"]), ("none,bckd+cwd", ["none", "bckd+cwd"]),
                                                ("cwd:feature_weight=10", ["cwd:feature_weight=10"])])
def test_cli_methods_reach_the_experiment_as_given(value, methods, monkeypatch, tmp_path):
    """`methods=none` alone is the method none (key=value parsing reads a bare none as None)."""
    import kdloss.adapters.ultralytics.experiment as experiment
    from kdloss.adapters.cli import experiment_command

    class Seen(Exception):
        pass

    def capture(data, student, teacher, methods, seeds, project, **kwargs):
        raise Seen(methods)

    monkeypatch.setattr(experiment, "run_and_summarize", capture)
    with pytest.raises(Seen) as seen:
        experiment_command([f"data={tmp_path}/d.yaml", "student=yolov8n.yaml", f"methods={value}"])
    assert seen.value.args[0] == methods


def test_task_models_show_their_mask_or_pose_map_next_to_box_map():
    results = [RunResult("yolov8n-seg", method, seed, "w", 12.0, 3, 0.2 + d, 0.1 + d, "val", "mask", 0.05 + d)
               for method, d in (("none", 0.0), ("bckd", 0.02)) for seed in (0, 1)]
    teacher = RunResult("yolov8s-seg", "teacher", 0, "t", 40.0, 11, 0.5, 0.3, "val", "mask", 0.2)
    lines = markdown_table(summarize(results, teacher)).splitlines()
    assert "| mAP50-95 | mask mAP50-95 | Δ mAP50-95 vs baseline |" in lines[0]
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| 0.2000 |" in lines[2] and "| 0.0700 ± 0.0000 |" in lines[4] and "+0.0200" in lines[4]
    box_only = markdown_table(summarize([RunResult("yolov8n", "none", 0, "w", 8.0, 3, 0.2, 0.1, "val")]))
    assert "mask" not in box_only and "pose" not in box_only


def test_an_interrupted_run_is_resumed_and_a_finished_one_not_trained_again(tmp_path, monkeypatch):
    """``kdloss experiment`` after an interruption: the run whose ``last.pt`` is unfinished resumes from it, a run
    that finished training (epoch -1, ultralytics' mark) but was not evaluated is not trained again, and an
    unreadable ``last.pt`` (a write cut short) trains afresh."""
    from kdloss.adapters.ultralytics import experiment

    calls = []
    monkeypatch.setattr(experiment, "distill", lambda *args, **kwargs: calls.append((args, kwargs)))

    def run(name: str, last: dict | bytes | None, best: bool = False) -> Path:
        weights = tmp_path / name / "weights"
        weights.mkdir(parents=True)
        if isinstance(last, dict):
            torch.save(last, weights / "last.pt")
        elif isinstance(last, bytes):
            (weights / "last.pt").write_bytes(last)
        if best:
            torch.save({"epoch": -1}, weights / "best.pt")
        return weights / "last.pt"

    last = run("bckd-seed0", {"epoch": 3, "optimizer": {}})
    run("bckd-seed1", {"epoch": -1}, best=True)
    run("bckd-seed2", b"PK\x03\x04 cut short")
    for seed in (0, 1, 2, 3):
        experiment.train_one("bckd", seed, "yolov8n.yaml", "t.pt", "data.yaml", tmp_path, {"epochs": 2})
    assert [experiment.trained_before(tmp_path / f"bckd-seed{s}") for s in (0, 1, 2, 3)] == [
        "interrupted", "finished", "nothing", "nothing"]
    assert calls[0] == ((str(last),), {"resume": str(last)})
    fresh = [(args, kwargs["seed"]) for args, kwargs in calls[1:]]
    assert fresh == [(("yolov8n.yaml", "t.pt"), 2), (("yolov8n.yaml", "t.pt"), 3)]  # seed 1 was not trained again
