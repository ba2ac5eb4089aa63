"""``kdloss demo``: the whole story on a built-in dataset, no internet, about 9 minutes on 2 CPU cores, set-up included.

1. writes the deterministic shapes dataset (YOLO format, 6 classes, clutter, small objects);
2. takes the yolov8s teacher shipped in ``assets/`` (:data:`SHIPPED_TEACHER`, trained on exactly this
   dataset by ``kdloss demo teacher=train``: 200 epochs, batch 8, seed 0), or trains one;
3. trains a yolov8n baseline and a yolov8n distilled with the default recipe, same settings and seed;
4. prints the table, writes ``report.md`` and ``comparison.png`` next to the runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ultralytics import YOLO
from ultralytics.utils import LOGGER

from kdloss.adapters.ultralytics.data import make_shapes_dataset
from kdloss.adapters.ultralytics.experiment import evaluation_split, parse_seeds, run_and_summarize
from kdloss.adapters.ultralytics.tables import markdown_table

DEFAULTS = {"workdir": "runs/kdloss-demo", "epochs": 30, "teacher": "auto", "teacher_epochs": 200, "teacher_batch": 8,
            "imgsz": 128, "batch": 32, "train_images": 256, "val_images": 64, "test_images": 64, "seeds": 1,
            "methods": "none,bckd", "device": "cpu", "workers": 2}
# The teacher in the repository: yolov8s trained on the default dataset with the default teacher_* settings.
SHIPPED_TEACHER = Path(__file__).resolve().parents[2] / "assets" / "shapes-yolov8s-teacher.pt"
_SHIPPED_FOR = ("imgsz", "train_images", "val_images", "test_images", "teacher_epochs", "teacher_batch")


def _say(message: str) -> None:
    LOGGER.info(f"\n[kdloss demo] {message}")


def run_demo(**options) -> str:
    """Run the demo; ``options`` override :data:`DEFAULTS` (CLI: ``kdloss demo epochs=60 seeds=3``;
    ``seeds`` is a count or a list, as for ``kdloss experiment``)."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown demo option(s) {sorted(unknown)}; options: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    workdir = Path(o["workdir"]).resolve()
    start = time.time()
    common = {"imgsz": int(o["imgsz"]), "batch": int(o["batch"]), "device": o["device"], "workers": int(o["workers"]),
              "plots": False, "amp": False, "verbose": False}

    _say(f"1/4 dataset: {o['train_images']} train, {o['val_images']} val, {o['test_images']} test images "
         f"under {workdir / 'shapes'}")
    data = make_shapes_dataset(workdir / "shapes", train=int(o["train_images"]), val=int(o["val_images"]),
                               test=int(o["test_images"]), imgsz=int(o["imgsz"]))

    teacher = choose_teacher(o, workdir)
    if teacher is None:
        _say(f"2/4 training the yolov8s teacher for {o['teacher_epochs']} epochs, batch {o['teacher_batch']}")
        teacher = train_teacher(data, workdir, "teacher", epochs=int(o["teacher_epochs"]),
                                batch=int(o["teacher_batch"]), imgsz=int(o["imgsz"]), device=o["device"],
                                workers=int(o["workers"]))

    methods = str(o["methods"]).split(",")
    seeds = parse_seeds(o["seeds"])
    _say(f"3/4 training yolov8n students for {o['epochs']} epochs: {', '.join(methods)} × seeds {seeds}")
    results, teacher_result, rows = run_and_summarize(data, "yolov8n.yaml", str(teacher), methods, seeds,
                                                      workdir / "students", epochs=int(o["epochs"]), **common)

    _say("4/4 writing the report")
    split = evaluation_split(data)
    table = markdown_table(rows)
    minutes = (time.time() - start) / 60
    report = "\n".join([
        "# kdloss demo", "",
        f"Built-in shapes dataset, imgsz {o['imgsz']}, students trained {o['epochs']} epochs, teacher "
        f"{Path(teacher).name}, evaluated on the {split} split; {minutes:.1f} minutes.", "",
        table, "",
        "Runs: " + ", ".join(sorted({str(Path(r.weights).parent.parent) for r in results})), "",
        f"Command: kdloss demo {' '.join(f'{k}={v}' for k, v in options.items())}".rstrip(), "",
    ])
    (workdir / "report.md").write_text(report)
    plot_comparison(rows, workdir / "comparison.png")
    (workdir / "results.json").write_text(__import__("json").dumps(
        {"teacher": asdict(teacher_result), "runs": [asdict(r) for r in results]}, indent=1))
    print("\n" + table + f"\n\nreport: {workdir / 'report.md'}\nplot:   {workdir / 'comparison.png'}")
    return table


def train_teacher(data: str | Path, project: str | Path, name: str, *, epochs: int = DEFAULTS["teacher_epochs"],
                  batch: int = DEFAULTS["teacher_batch"], imgsz: int = DEFAULTS["imgsz"], device: str = "cpu",
                  workers: int = DEFAULTS["workers"]) -> Path:
    """Train a yolov8s teacher from yaml as the shipped one was (seed 0, no AMP, no plots) into
    ``project/name``; returns its ``best.pt``. ``kdloss demo teacher=train`` and the evidence's teachers
    (``docs/evidence/scripts/teacher.py``) both train through here."""
    project = Path(project).resolve()  # ultralytics puts a relative project under runs/detect/
    YOLO("yolov8s.yaml").train(data=str(data), epochs=epochs, batch=batch, imgsz=imgsz, device=device,
                               workers=workers, project=str(project), name=name, exist_ok=True, seed=0,
                               plots=False, amp=False, verbose=False)
    return project / name / "weights" / "best.pt"


def choose_teacher(o: dict, workdir: Path) -> Path | None:
    """The teacher to use, or ``None`` to train one. ``teacher=auto``: the one a previous demo trained in
    ``workdir``, else the shipped one if the dataset and teacher settings are the defaults it was trained
    with; ``teacher=train``: train anew; any other value: that checkpoint."""
    choice = str(o["teacher"])
    trained = workdir / "teacher" / "weights" / "best.pt"
    if choice == "train":
        return None
    if choice != "auto":
        path = Path(choice)
        if not path.is_file():
            raise ValueError(f"teacher={choice}: no such file")
        _say(f"2/4 teacher: {path}")
        return path
    if trained.exists():
        _say(f"2/4 re-using the teacher trained before: {trained} (delete it, or teacher=train, to train anew)")
        return trained
    if SHIPPED_TEACHER.exists() and all(str(o[k]) == str(DEFAULTS[k]) for k in _SHIPPED_FOR):
        _say(f"2/4 teacher: the shipped {SHIPPED_TEACHER.name} (reproduce it with `kdloss demo teacher=train`)")
        return SHIPPED_TEACHER
    return None


def plot_comparison(rows: list[dict], path: Path) -> None:
    """Bar chart of mAP50-95 (mean ± std over seeds) per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["model"] for r in rows]
    means = [r["map50_95"][0] for r in rows]
    stds = [r["map50_95"][1] for r in rows]
    colors = ["#888888" if r["method"] == "teacher" else "#4c72b0" if r["method"] == "none" else "#dd8452"
              for r in rows]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows)), 4), dpi=100)
    bars = ax.bar(range(len(rows)), means, yerr=stds, color=colors, capsize=4)
    for bar, mean in zip(bars, means):
        ax.annotate(f"{mean:.3f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=9, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(rows)), labels, rotation=15, ha="right")
    ax.set_ylabel("mAP50-95")
    ax.set_title("kdloss demo: distilled student vs baseline")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
