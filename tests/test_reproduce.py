"""docs/evidence/reproduce.py: one entry per published table, whose methods and seeds are those of the table's
committed runs (docs/evidence/NAME-runs.json) and whose data, teacher, student and epochs are those of its job
lists; ``--list`` names every table; ``--dry-run`` prints repository-relative commands and runs none of them.
Nothing here trains."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "docs" / "evidence"
sys.path.append(str(ROOT))  # docs/ is not installed; `python -m pytest` from the root has it on the path already
reproduce = importlib.import_module("docs.evidence.reproduce")
PUBLISHED = sorted(p.stem for p in EVIDENCE.glob("*.md") if p.name != "PROVENANCE.md")


def published_runs(name: str) -> dict[str, list[int]]:
    runs: dict[str, list[int]] = {}
    for run in json.loads((EVIDENCE / f"{name}-runs.json").read_text()):
        runs.setdefault(run["method"], []).append(run["seed"])
    return {method: sorted(seeds) for method, seeds in runs.items()}


def publish_teachers() -> dict[str, str]:
    """publish.py's TEACHERS, read without running the script (it publishes at import)."""
    tree = ast.parse((EVIDENCE / "scripts" / "publish.py").read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["TEACHERS"]]
    return ast.literal_eval(value)


def test_every_published_table_has_an_entry_and_every_entry_a_table():
    assert PUBLISHED and set(reproduce.TABLES) == set(PUBLISHED)


@pytest.mark.parametrize("name", PUBLISHED)
def test_entry_runs_are_the_published_runs(name):
    entry = reproduce.TABLES[name]
    assert {method: sorted(seeds) for method, seeds in entry.runs.items()} == published_runs(name)


@pytest.mark.parametrize("name", PUBLISHED)
def test_publish_reads_the_entry_project(name):
    assert name in publish_teachers()  # publish.py writes this table
    # publish.py reads runs/evidence/{name}-exp, else runs/evidence/{name}
    assert reproduce.TABLES[name].project in (f"runs/evidence/{name}-exp", f"runs/evidence/{name}")


@pytest.mark.parametrize("name", PUBLISHED)
def test_todays_spellings_name_other_folders_and_parse(name):
    experiment = pytest.importorskip("kdloss.adapters.ultralytics.experiment")
    entry = reproduce.TABLES[name]
    assert set(entry.today) <= set(entry.runs)
    labels = {experiment.run_name(label, 0) for label in entry.runs}
    for today in entry.today.values():
        assert experiment.run_name(today, 0) not in labels  # would read another run's result back as this one's
        experiment.parse_method(today)


def job_lines():
    for path in sorted((EVIDENCE / "scripts" / "queues").glob("jobs*.txt")):
        for line in path.read_text().splitlines():
            if line.strip():
                project, data, teacher, student, _method, _seed, *epochs = line.replace("/work/main/", "").split("|")
                yield path.name, project, data, teacher, student, int(epochs[0]) if epochs else 30


def test_entries_are_what_the_job_lists_ran():
    by_project = {Path(entry.project).name: entry for entry in reproduce.TABLES.values()}
    # the job lists name the shapes teachers by the paths they had then: the asset was the 60-epoch teacher
    # until 2640a7d shipped the 200-epoch one, which machine A's lists name by its training folder
    then = {("shapes-exp", "assets/shapes-yolov8s-teacher.pt"): reproduce.SHAPES_60.path,
            ("pruned-exp", "assets/shapes-yolov8s-teacher.pt"): reproduce.SHAPES_60.path}
    checked = set()
    for source, project, data, teacher, student, epochs in job_lines():
        if project not in by_project:  # dense-t200-e100-exp: every job claimed unrun, no table
            continue
        entry = by_project[project]
        teacher = then.get((project, teacher), teacher).replace(
            "runs/evidence/shapes-teacher200/weights/best.pt", reproduce.SHIPPED.path)
        assert (data, teacher, student, epochs) == (f"{reproduce.DATA_ROOTS[entry.data]}/data.yaml",
                                                     entry.teacher.path, entry.student.model, entry.epochs), source
        checked.add(project)
    assert len(checked) >= 15


def test_checkpoint_students_are_their_source_runs():
    experiment = pytest.importorskip("kdloss.adapters.ultralytics.experiment")
    for entry in reproduce.TABLES.values():
        source = entry.student.source
        if source is None:
            assert entry.student.model.endswith(".yaml")
            continue
        assert source.seed in reproduce.TABLES[source.table].runs[source.method]
        if not entry.student.prune:
            folder = experiment.run_name(source.method, source.seed)
            assert entry.student.model == f"{reproduce.TABLES[source.table].project}/{folder}/weights/best.pt"


def test_list_names_every_table():
    out = subprocess.run([sys.executable, "-m", "docs.evidence.reproduce", "--list"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    listed = dict(line.split(None, 1) for line in out.splitlines())
    assert list(listed) == list(reproduce.TABLES)
    assert all(description.strip() for description in listed.values())


def fail(*args, **kwargs):
    raise AssertionError("--dry-run ran something")


@pytest.mark.parametrize("name", PUBLISHED)
def test_dry_run_prints_relative_commands_and_runs_nothing(name, monkeypatch, capsys):
    pytest.importorskip("ultralytics")
    import kdloss.adapters.cli
    import kdloss.adapters.ultralytics.data

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(subprocess, "run", fail)
    monkeypatch.setattr(reproduce.runpy, "run_path", fail)
    monkeypatch.setattr(kdloss.adapters.cli, "main", fail)
    monkeypatch.setattr(kdloss.adapters.ultralytics.data, "make_shapes_dataset", fail)
    reproduce.main([name, "--dry-run"])
    commands = [line[len("   $ "):] for line in capsys.readouterr().out.splitlines() if line.startswith("   $ ")]
    assert commands[-1] == "python docs/evidence/scripts/publish.py"
    for command in commands:
        assert "/work/" not in command and not re.search(r"(^|[\s=])/", command), command
    entry = reproduce.TABLES[name]
    printed = set()
    for command in commands:
        if command.startswith("kdloss experiment") and command.endswith(f"project={entry.project}"):
            methods = re.search(r"methods=(\S+)", command).group(1).split(",")
            seeds = json.loads(re.search(r"seeds=(\S+)", command).group(1))
            printed |= {(method, seed) for method in methods for seed in seeds}
    assert printed == {(m, s) for m, seeds in reproduce.methods_to_run(name).items() for s in seeds}


def test_missing_seeds_of_a_renamed_label_train_under_todays_spelling(tmp_path, monkeypatch):
    experiment = pytest.importorskip("kdloss.adapters.ultralytics.experiment")
    monkeypatch.chdir(tmp_path)
    project = tmp_path / reproduce.TABLES["shapes-t200"].project

    def result(method, seed):
        folder = project / experiment.run_name(method, seed)
        folder.mkdir(parents=True)
        (folder / experiment.RESULT_FILE).write_text("{}")

    for method, seed in (("bckd", 0), ("bckd", 1), ("none", 0)):
        result(method, seed)
    methods = reproduce.methods_to_run("shapes-t200")
    assert "bckd" not in methods and methods["bckd:logit_weight=1"] == (2, 3)  # BCKD at weight 1, as it ran
    assert methods["none"] == tuple(range(8))  # kdloss experiment skips the seed that has a result
    assert reproduce.progress("shapes-t200").startswith("3 of 41 runs have a result")
    result("bckd:logit_weight=1", 2)  # kdloss experiment skips it, and it counts as done
    assert reproduce.progress("shapes-t200").startswith("4 of 41 runs have a result")


def test_an_unfinished_teacher_resumes_and_a_finished_one_is_kept(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / Path(reproduce.DENSE_200.path).parent
    weights.mkdir(parents=True)
    torch.save({"epoch": 41}, weights / "last.pt")
    (step,) = reproduce.teacher_steps(reproduce.DENSE_200)
    assert step.command == "yolo train resume model=runs/evidence/dense-teacher200/weights/last.pt"
    torch.save({"epoch": -1}, weights / "last.pt")  # ultralytics' mark of a finished training
    (weights / "best.pt").write_bytes(b"")
    assert reproduce.teacher_steps(reproduce.DENSE_200) == []
