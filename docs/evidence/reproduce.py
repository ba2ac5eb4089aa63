"""One command per published table: write its data, train or fetch its teacher, make its student, train the runs
that are missing and regenerate the table. From the repository root:

    .venv/bin/python -m docs.evidence.reproduce --list
    .venv/bin/python -m docs.evidence.reproduce shapes-t200 [--dry-run]

Every table of docs/evidence/*.md is one entry of TABLES: its data, teacher, student, the methods and seeds its
runs ran (the labels of docs/evidence/NAME-runs.json), the students' epochs and its project under runs/evidence/.
``kdloss experiment`` skips a run that has a ``kdloss_result.json`` and trains anew, from its first epoch, one that
has none (an unfinished run included); an unfinished teacher resumes (ultralytics' ``resume``). A label that
means something else in the CLI today (BCKD's weight was 1, the teacher ran unfolded:
docs/evidence/PROVENANCE.md, "Relabellings and labels") is trained under today's spelling of what ran
(``Table.today``), for the seeds that have no result under the label, so its rows then carry that spelling.
``--dry-run`` prints the commands without running them.
"""

from __future__ import annotations

import argparse
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVIDENCE = "runs/evidence"
DATA_ROOTS = {"shapes": f"{EVIDENCE}/shapes", "dense": f"{EVIDENCE}/dense"}  # make_shapes_dataset's kind → folder
DATA_SIZES = {"train": 256, "val": 64, "test": 64, "imgsz": 128}
TRAIN_ARGS = ("imgsz=128", "batch=32", "workers=2", "device=cpu", "amp=False", "plots=False")  # every evidence run
PUBLISH = "docs/evidence/scripts/publish.py"


@dataclass(frozen=True)
class Teacher:
    path: str  # the checkpoint, repository-relative
    git: str = ""  # "commit:path" to take it from git history when missing
    script: tuple[str, ...] = ()  # or the script, with its arguments, that trains it (last.pt beside path)


@dataclass(frozen=True)
class Run:
    table: str  # the entry whose project holds it
    method: str
    seed: int


@dataclass(frozen=True)
class Student:
    model: str  # a model yaml, or the checkpoint fine-tuned
    source: Run | None = None  # the run whose best.pt it is, or is pruned from (trained first when missing)
    prune: tuple[str, ...] = ()  # the kdloss prune settings that cut it from that run


@dataclass(frozen=True)
class Table:
    about: str  # one line, for --list
    data: str  # a key of DATA_ROOTS
    teacher: Teacher
    student: Student
    runs: dict[str, tuple[int, ...]]  # method label, as in NAME-runs.json → its seeds
    epochs: int
    project: str
    today: dict[str, str] = field(default_factory=dict)  # labels that mean something else today → what ran


def seeds(n: int) -> tuple[int, ...]:
    return tuple(range(n))


SHIPPED = Teacher("assets/shapes-yolov8s-teacher.pt")  # yolov8s, 200 epochs (docs/evidence/scripts/teacher.py)
SHAPES_60 = Teacher(f"{EVIDENCE}/shapes-teacher60.pt", git="9e44f58:assets/shapes-yolov8s-teacher.pt")
DENSE_60 = Teacher(f"{EVIDENCE}/dense-teacher/weights/best.pt", script=("docs/evidence/scripts/teacher_dense.py",))
DENSE_200 = Teacher(f"{EVIDENCE}/dense-teacher200/weights/best.pt", script=(
    "docs/evidence/scripts/teacher.py", f"{EVIDENCE}/dense/data.yaml", "dense-teacher200", "200"))
YOLO26 = Teacher(f"{EVIDENCE}/shapes-yolo26-teacher/weights/best.pt",
                 script=("docs/evidence/scripts/teacher_yolo26.py",))

LAMP_HALF = ("ratio=0.5", "method=lamp", "imgsz=128")
PRUNED = Student(f"{EVIDENCE}/pruned/yolov8n-shapes-pruned.pt", Run("shapes", "none", 0), LAMP_HALF)
PRUNED_M2 = Student(f"{EVIDENCE}/pruned-m2/yolov8n-shapes-pruned.pt", Run("shapes-t200-m2", "none", 0), LAMP_HALF)
TRAINED_M2 = Student(f"{EVIDENCE}/shapes-t200-m2/none-seed0/weights/best.pt", Run("shapes-t200-m2", "none", 0))

# What the labels of the runs made before BCKD's weight became 0.5 (245c149) and before the folded teacher
# (d9ef04e) are in today's CLI, as docs/results.md writes them (0.5 unfolded is spelled out in full, because
# bckd:fold_teacher=false is another run's label in the same project).
UNFOLDED = {label: f"{label}:fold_teacher=false" for label in (
    "cwd", "cwd:feature_weight=10", "cwd:feature_weight=0.1", "cwd:tau=4", "l2", "l2:logit_weight=2",
    "pkd:feature_weight=1", "pkd:feature_weight=0.1", "crosskd", "mgd", "mgd:alpha_mgd=2e-6",
    "mimic:feature_weight=1", "mimic:feature_weight=0.1", "bckd:logit_weight=2", "bckd:logit_weight=0.5")}
UNFOLDED_WEIGHT_1 = {"bckd+cwd": "bckd+cwd:logit_weight=1:fold_teacher=false",
                     "bckd:fold_teacher=false": "bckd:logit_weight=1:fold_teacher=false",
                     "bckd+ld": "bckd+ld:logit_weight=1:fold_teacher=false",
                     "bckd:stop_epochs=5": "bckd:logit_weight=1:stop_epochs=5:fold_teacher=false",
                     "bckd:schedule_warmup=0.2": "bckd:logit_weight=1:schedule_warmup=0.2:fold_teacher=false"}
WEIGHT_1 = {"bckd": "bckd:logit_weight=1", "bckd+cwd": "bckd+cwd:logit_weight=1", "bckd+sl2": "bckd+sl2:logit_weight=1"}
DEFAULT_BUILTIN = {"none": seeds(3), "builtin": seeds(3), "bckd:logit_weight=0.5": seeds(3)}
TWO_TERMS = {**DEFAULT_BUILTIN, "bckd:logit_weight=0.5:bckd_box_weight=0": seeds(3),
             "bckd:logit_weight=0.5:bckd_cls_weight=0": seeds(3)}
COSINE = "schedule=cosine:schedule_final_ratio=0"

TABLES = {
    "shapes": Table(
        "the sweep that chose the defaults: every setting, shapes, 60-epoch teacher, 30-epoch yolov8n (machine A)",
        "shapes", SHAPES_60, Student("yolov8n.yaml"),
        {m: seeds(3) for m in (
            "none", "bckd+cwd", "builtin", "bckd", "bckd:fold_teacher=false", "cwd", "cwd:feature_weight=10",
            "cwd:feature_weight=0.1", "cwd:tau=4", "l2", "l2:logit_weight=2", "pkd:feature_weight=1",
            "pkd:feature_weight=0.1", "bckd+ld", "crosskd", "mgd", "mgd:alpha_mgd=2e-6", "mimic:feature_weight=1",
            "mimic:feature_weight=0.1", "bckd:logit_weight=2", "bckd:logit_weight=0.5", "bckd:stop_epochs=5",
            "bckd:schedule_warmup=0.2")},
        30, f"{EVIDENCE}/shapes-exp", {**UNFOLDED, **UNFOLDED_WEIGHT_1, "bckd": "bckd:logit_weight=1"}),
    "dense": Table(
        "the sweep's choices on dense, not retuned: 60-epoch teacher, 30-epoch yolov8n (machine A)",
        "dense", DENSE_60, Student("yolov8n.yaml"),
        {m: seeds(3) for m in ("none", "bckd+cwd", "builtin", "bckd", "bckd:fold_teacher=false", "cwd:tau=4",
                               "pkd:feature_weight=1", "bckd+ld", "crosskd")},
        30, f"{EVIDENCE}/dense-exp",
        {"bckd": "bckd:logit_weight=1", "pkd:feature_weight=1": UNFOLDED["pkd:feature_weight=1"],
         "crosskd": UNFOLDED["crosskd"], **{k: UNFOLDED_WEIGHT_1[k] for k in ("bckd+cwd", "bckd:fold_teacher=false",
                                                                               "bckd+ld")}}),
    "pruned": Table(
        "the LAMP-pruned yolov8n fine-tuned 30 epochs, 60-epoch teacher, shapes (machine A)",
        "shapes", SHAPES_60, PRUNED,
        {m: seeds(3) for m in ("none", "bckd+cwd", "builtin", "bckd", "bckd:fold_teacher=false")},
        30, f"{EVIDENCE}/pruned-exp",
        {"bckd": "bckd:logit_weight=1", **{k: UNFOLDED_WEIGHT_1[k] for k in ("bckd+cwd", "bckd:fold_teacher=false")}}),
    "yolo26": Table(
        "YOLO26's one-to-one branch: yolo26s teacher, 30-epoch yolo26n, shapes (machine A)",
        "shapes", YOLO26, Student("yolo26n.yaml"),
        {"none": seeds(3), "bckd": seeds(3), "bckd:one2one=true": seeds(3)},
        30, f"{EVIDENCE}/yolo26-exp",
        {"bckd": "bckd:logit_weight=1", "bckd:one2one=true": "bckd:logit_weight=1:one2one=true"}),
    "shapes-t200": Table(
        "30-epoch yolov8n on shapes, the shipped 200-epoch teacher (machine A)",
        "shapes", SHIPPED, Student("yolov8n.yaml"),
        {"none": seeds(8), "bckd+cwd": seeds(3), "builtin": seeds(8), "bckd": seeds(4),
         "bckd:logit_weight=0.5": seeds(8), "bckd:avg_factor=positives:logit_weight=1": seeds(2),
         f"bckd+sl2:{COSINE}": seeds(8)},
        30, f"{EVIDENCE}/shapes-t200-exp", {k: WEIGHT_1[k] for k in ("bckd", "bckd+cwd")}),
    "dense-t200": Table(
        "30-epoch yolov8n on dense, the 200-epoch dense teacher (machine A)",
        "dense", DENSE_200, Student("yolov8n.yaml"),
        {m: seeds(3) for m in ("none", "builtin", "bckd", "bckd:logit_weight=0.5", f"bckd+sl2:{COSINE}")},
        30, f"{EVIDENCE}/dense-t200-exp", {"bckd": WEIGHT_1["bckd"]}),
    "pruned-t200": Table(
        "the LAMP-pruned yolov8n fine-tuned 30 epochs, the shipped 200-epoch teacher, shapes (machine A)",
        "shapes", SHIPPED, PRUNED,
        {m: seeds(3) for m in ("none", "builtin", "bckd", "bckd:logit_weight=0.5",
                               "bckd:avg_factor=positives:logit_weight=1", "bckd:logit_weight=0.25",
                               "bckd:logit_weight=0", "bckd:schedule_warmup=0.3", f"bckd+sl2:{COSINE}")},
        30, f"{EVIDENCE}/pruned-t200-exp", {"bckd": WEIGHT_1["bckd"]}),
    "shapes-t200-e60": Table(
        "60-epoch yolov8n on shapes, the shipped 200-epoch teacher (machine A)",
        "shapes", SHIPPED, Student("yolov8n.yaml"),
        {"none": seeds(6), "bckd+cwd": seeds(3), "builtin": seeds(6), "bckd+sl2": seeds(6), "bckd": seeds(6),
         "cwd": seeds(3), "crosskd": seeds(3), "bckd:logit_weight=2": seeds(3), "bckd:logit_weight=0.5": seeds(6),
         "bckd+sl2:logit_weight=0.5": seeds(3), "bckd+sl2:logit_weight=0.5:feature_weight=12": seeds(3),
         "bckd:avg_factor=positives:logit_weight=1": seeds(2), f"bckd:logit_weight=1:{COSINE}": seeds(3),
         f"bckd+sl2:{COSINE}": seeds(6)},
        60, f"{EVIDENCE}/shapes-t200-e60-exp", WEIGHT_1),
    "dense-t200-e60": Table(
        "60-epoch yolov8n on dense, the 200-epoch dense teacher (machine A)",
        "dense", DENSE_200, Student("yolov8n.yaml"),
        {"none": seeds(6), "builtin": seeds(6), "bckd": seeds(6), "bckd:logit_weight=0.5": seeds(6),
         "bckd+sl2:logit_weight=0.5": seeds(2), f"bckd+sl2:{COSINE}": seeds(6), f"bckd:{COSINE}": seeds(2)},
        60, f"{EVIDENCE}/dense-t200-e60-exp", {"bckd": WEIGHT_1["bckd"]}),
    "shapes-t200-e100": Table(
        "100-epoch yolov8n on shapes, the shipped 200-epoch teacher (machine A)",
        "shapes", SHIPPED, Student("yolov8n.yaml"),
        {"none": seeds(5), "builtin": seeds(5), "bckd:logit_weight=0.5": seeds(5)},
        100, f"{EVIDENCE}/shapes-t200-e100-exp"),
    "shapes-t200-m2": Table(
        "30-epoch yolov8n on shapes, the shipped teacher, on machine B (the demo's regime)",
        "shapes", SHIPPED, Student("yolov8n.yaml"), DEFAULT_BUILTIN, 30, f"{EVIDENCE}/shapes-t200-m2"),
    "shapes-t200-e60-m2": Table(
        "60-epoch yolov8n on shapes, the shipped teacher, machine B: feature losses alone, stop_epochs, BCKD's terms",
        "shapes", SHIPPED, Student("yolov8n.yaml"),
        {"none": seeds(3), "mgd": seeds(3), "bckd:logit_weight=0.5": seeds(3),
         "bckd:logit_weight=0.5:stop_epochs=30": seeds(3), "bckd:logit_weight=0.5:bckd_box_weight=0": seeds(3),
         "bckd:logit_weight=0.5:bckd_cls_weight=0": seeds(3), "mimic": seeds(3), "pkd": seeds(3)},
        60, f"{EVIDENCE}/shapes-t200-e60-m2"),
    "dense-t200-e60-m2": Table(
        "60-epoch yolov8n on dense, machine B's 200-epoch dense teacher: feature losses alone, stop_epochs",
        "dense", DENSE_200, Student("yolov8n.yaml"),
        {"none": seeds(6), "cwd": seeds(3), "mgd": seeds(3), "bckd:logit_weight=0.5": seeds(3),
         "bckd:logit_weight=0.5:stop_epochs=30": seeds(3), "mimic": seeds(3), "pkd": seeds(6)},
        60, f"{EVIDENCE}/dense-t200-e60-m2"),
    "dense-t200-e100-m2": Table(
        "100-epoch yolov8n on dense, machine B's 200-epoch dense teacher",
        "dense", DENSE_200, Student("yolov8n.yaml"), DEFAULT_BUILTIN, 100, f"{EVIDENCE}/dense-t200-e100-m2"),
    "pruned-t200-m2": Table(
        "machine B's pruned yolov8n fine-tuned 30 epochs, the shipped teacher, shapes: default, builtin, BCKD's terms",
        "shapes", SHIPPED, PRUNED_M2, TWO_TERMS, 30, f"{EVIDENCE}/pruned-t200-m2"),
    "finetune-t200-m2": Table(
        "machine B's 30-epoch yolov8n, unpruned, fine-tuned 30 more epochs, the shipped teacher, shapes",
        "shapes", SHIPPED, TRAINED_M2, TWO_TERMS, 30, f"{EVIDENCE}/finetune-t200-m2"),
    "pruned-t60-m2": Table(
        "machine B's pruned yolov8n fine-tuned 30 epochs with the 60-epoch teacher, shapes",
        "shapes", SHAPES_60, PRUNED_M2, {"none": seeds(3), "bckd:logit_weight=0.5": seeds(3)},
        30, f"{EVIDENCE}/pruned-t60-m2"),
    "shapes-y11-t200-e60-m2": Table(
        "60-epoch yolo11n on shapes, the shipped yolov8s teacher (machine B)",
        "shapes", SHIPPED, Student("yolo11n.yaml"), DEFAULT_BUILTIN, 60, f"{EVIDENCE}/shapes-y11-t200-e60-m2"),
    "dense-y11-t200-e60-m2": Table(
        "60-epoch yolo11n on dense, machine B's 200-epoch dense yolov8s teacher",
        "dense", DENSE_200, Student("yolo11n.yaml"), DEFAULT_BUILTIN, 60, f"{EVIDENCE}/dense-y11-t200-e60-m2"),
}


@dataclass(frozen=True)
class Step:
    says: str  # what it does, in words
    command: str  # the command it runs, as typed at the repository root
    run: Callable[[], None]


def run_folder(run: Run) -> Path:
    from kdloss.adapters.ultralytics.experiment import run_name

    return Path(TABLES[run.table].project) / run_name(run.method, run.seed)


def is_done(run: Run) -> bool:
    from kdloss.adapters.ultralytics.experiment import RESULT_FILE

    return (run_folder(run) / RESULT_FILE).is_file()


def checked(code: int, what: str) -> None:
    if code != 0:
        raise SystemExit(f"reproduce: {what} failed (exit status {code})")


def data_step(kind: str) -> Step:
    """The dataset; make_shapes_dataset reuses a complete one as it is, so it always runs."""
    sizes = ", ".join(f"{key}={value}" for key, value in DATA_SIZES.items())
    call = f"make_shapes_dataset({DATA_ROOTS[kind]!r}, {sizes}, kind={kind!r})"

    def write() -> None:
        from kdloss.adapters.ultralytics.data import make_shapes_dataset

        make_shapes_dataset(DATA_ROOTS[kind], **DATA_SIZES, kind=kind)

    return Step(f"write the {kind} dataset (a complete one is reused)",
                f'python -c "from kdloss.adapters.ultralytics.data import make_shapes_dataset; {call}"', write)


def teacher_epoch(teacher: Teacher) -> int | None:
    """The epoch an unfinished teacher training stopped after, ``None`` when there is nothing to resume (not
    started, or finished: ultralytics marks a finished checkpoint with epoch -1)."""
    last = Path(teacher.path).parent / "last.pt"
    if not teacher.script or not last.is_file():
        return None
    import torch

    epoch = torch.load(last, map_location="cpu", weights_only=False).get("epoch", -1)
    return None if epoch == -1 else epoch


def teacher_steps(teacher: Teacher) -> list[Step]:
    """Nothing when the teacher is there; else taken from git history, resumed, or trained by its script."""
    epoch = teacher_epoch(teacher)
    if epoch is not None:
        last = str(Path(teacher.path).parent / "last.pt")

        def resume() -> None:
            from ultralytics import YOLO

            YOLO(last).train(resume=True)

        return [Step(f"resume the teacher's training after epoch {epoch + 1}", f"yolo train resume model={last}",
                     resume)]
    if Path(teacher.path).is_file():
        return []
    if teacher.git:
        def show() -> None:
            Path(teacher.path).parent.mkdir(parents=True, exist_ok=True)
            with open(teacher.path, "wb") as out:
                checked(subprocess.run(["git", "show", teacher.git], stdout=out).returncode, "git show")

        return [Step("take the 60-epoch teacher from git history", f"git show {teacher.git} > {teacher.path}", show)]
    if teacher.script:
        def train() -> None:
            checked(subprocess.run([sys.executable, *teacher.script]).returncode, teacher.script[0])

        return [Step("train the teacher", "python " + " ".join(teacher.script), train)]
    raise SystemExit(f"reproduce: {teacher.path} is shipped with the repository and missing here")


def experiment_args(table: Table, methods: list[str], run_seeds: tuple[int, ...]) -> list[str]:
    return ["experiment", f"data={DATA_ROOTS[table.data]}/data.yaml", f"teacher={table.teacher.path}",
            f"student={table.student.model}", f"methods={','.join(methods)}",
            f"seeds=[{','.join(map(str, run_seeds))}]", f"epochs={table.epochs}", *TRAIN_ARGS,
            f"project={table.project}"]


def experiment_step(table: Table, methods: list[str], run_seeds: tuple[int, ...]) -> Step:
    args = experiment_args(table, methods, run_seeds)

    def experiment() -> None:
        from kdloss.adapters.cli import main as kdloss

        checked(kdloss(args), "kdloss experiment")

    says = f"{len(methods)} method(s) × {len(run_seeds)} seed(s): skip the runs that have a result, train the others"
    return Step(says, "kdloss " + " ".join(args), experiment)


def prune_step(student: Student) -> Step:
    source = TABLES[student.source.table]
    args = ["prune", f"model={run_folder(student.source)}/weights/best.pt",
            f"data={DATA_ROOTS[source.data]}/data.yaml", *student.prune, f"output={student.model}"]

    def prune() -> None:
        from kdloss.adapters.cli import main as kdloss

        checked(kdloss(args), "kdloss prune")

    return Step("prune the student from that run", "kdloss " + " ".join(args), prune)


def student_steps(student: Student) -> list[Step]:
    """Nothing for a yaml or a student that is ready; else its source run (and what that needs), then the pruning."""
    if student.source is None or (student.prune and Path(student.model).is_file()):
        return []
    source = student.source
    steps = [] if is_done(source) else [*prerequisites(source.table),
                                        experiment_step(TABLES[source.table], [source.method], (source.seed,))]
    return steps + ([prune_step(student)] if student.prune else [])


def prerequisites(name: str) -> list[Step]:
    """The data, teacher and student the table's runs need, each once."""
    table = TABLES[name]
    steps = [data_step(table.data), *teacher_steps(table.teacher), *student_steps(table.student)]
    return list({step.command: step for step in steps}.values())


def methods_to_run(name: str) -> dict[str, tuple[int, ...]]:
    """Each label with its seeds as ``kdloss experiment`` is to be given them: a label in ``Table.today`` in
    today's spelling, for the seeds that have no result under the label (those that have are published as
    they are)."""
    table = TABLES[name]
    out = {}
    for label, label_seeds in table.runs.items():
        if label not in table.today:
            out[label] = label_seeds
            continue
        missing = tuple(s for s in label_seeds if not is_done(Run(name, label, s)))
        if missing:
            out[table.today[label]] = missing
    return out


def experiment_steps(name: str) -> list[Step]:
    """One ``kdloss experiment`` per set of seeds, in the table's order of methods."""
    by_seeds: dict[tuple[int, ...], list[str]] = {}
    for method, method_seeds in methods_to_run(name).items():
        by_seeds.setdefault(method_seeds, []).append(method)
    return [experiment_step(TABLES[name], methods, run_seeds) for run_seeds, methods in by_seeds.items()]


def publish_step(name: str) -> Step:
    def publish() -> None:
        runpy.run_path(PUBLISH, run_name="__main__")

    return Step(f"regenerate docs/evidence/{name}.md, {name}-runs.json and {name}-paired.png (publish.py rewrites "
                "every table whose runs are under runs/evidence/)", f"python {PUBLISH}", publish)


def plan(name: str) -> list[Step]:
    return [*prerequisites(name), *experiment_steps(name), publish_step(name)]


def has_result(name: str, label: str, seed: int) -> bool:
    """The run has a result under its label, or under today's spelling of it."""
    today = TABLES[name].today.get(label)
    return is_done(Run(name, label, seed)) or (today is not None and is_done(Run(name, today, seed)))


def progress(name: str) -> str:
    """How many of the table's runs have a result, and the labels trained under today's spelling."""
    table = TABLES[name]
    runs = [(method, seed) for method, method_seeds in table.runs.items() for seed in method_seeds]
    done = sum(has_result(name, method, seed) for method, seed in runs)
    text = f"{done} of {len(runs)} runs have a result under {table.project}"
    if done < len(runs):
        text += " (the others train from their first epoch, unfinished ones included)"
    renamed = [f"{label} → {today}" for label, today in table.today.items()
               if not all(is_done(Run(name, label, s)) for s in table.runs[label])]
    if renamed:
        text += "\nlabels that mean something else today, trained as what ran: " + ", ".join(renamed)
    return text


def list_tables() -> None:
    width = max(map(len, TABLES))
    for name, table in TABLES.items():
        print(f"{name:<{width}}  {table.about}")


def reproduce(name: str, dry_run: bool) -> None:
    print(f"reproduce {name}: {TABLES[name].about}\n{progress(name)}")
    if dry_run:
        print("(dry run: nothing runs)")
    for i, step in enumerate(plan(name), 1):
        print(f"{i}. {step.says}\n   $ {step.command}", flush=True)
        if not dry_run:
            step.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m docs.evidence.reproduce", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=list(TABLES), metavar="NAME", help="a table; --list names them")
    parser.add_argument("--list", action="store_true", help="every table with a one-line description")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    if args.list:
        return list_tables()
    if args.name is None:
        parser.error("give a table NAME, or --list")
    if Path.cwd().resolve() != ROOT:
        raise SystemExit(f"reproduce: run it from the repository root ({ROOT.name}/): its paths are relative to it")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # read by ultralytics at import: no downloads, no pip installs
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    reproduce(args.name, args.dry_run)


if __name__ == "__main__":
    main()
