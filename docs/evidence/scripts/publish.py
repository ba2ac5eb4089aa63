"""Tables and plots of the evidence runs (read back, nothing trains) into docs/evidence/."""
import json
from pathlib import Path

from kdloss.adapters.ultralytics.experiment import RunResult
from kdloss.adapters.ultralytics.pairing import paired_deltas, paired_statistics, summarize
from kdloss.adapters.ultralytics.tables import markdown_table, plot_paired

ORDER = ["none", "bckd+cwd", "builtin", "bckd+sl2", "bckd", "bckd:fold_teacher=false", "bckd:one2one=true", "cwd",
         "cwd:feature_weight=10", "cwd:feature_weight=0.1", "cwd:tau=4", "l2", "l2:logit_weight=2",
         "pkd:feature_weight=1", "pkd:feature_weight=0.1", "bckd+ld", "crosskd", "mgd", "mgd:alpha_mgd=2e-6",
         "mimic:feature_weight=1", "mimic:feature_weight=0.1", "bckd:logit_weight=2", "bckd:logit_weight=0.5",
         "bckd+sl2:logit_weight=0.5", "bckd+sl2:logit_weight=0.5:feature_weight=12", "bckd:stop_epochs=5",
         "bckd:schedule_warmup=0.2", "bckd:avg_factor=positives:logit_weight=1", "bckd:logit_weight=0.25",
         "bckd:logit_weight=0", "bckd:schedule_warmup=0.3",
         "bckd:logit_weight=1:schedule=cosine:schedule_final_ratio=0",
         "bckd+sl2:schedule=cosine:schedule_final_ratio=0", "bckd:schedule=cosine:schedule_final_ratio=0",
         "bckd:logit_weight=0.5:stop_epochs=30"]
# each experiment's teacher: the pruned student's is shapes' yolov8s; yolo26's the yolo26s trained on shapes;
# the *-t200 experiments use the yolov8s teachers trained 200 epochs instead of 60 (docs/evidence/scripts/teacher.py);
# the *-e60 and *-e100 ones train their students 60 and 100 epochs instead of 30; the *-m2 ones ran on a second
# kind of machine (session 9), whose floating point differs, so they pair only with each other; dense-t200-m2 is
# the dense teacher trained again there by the same command; session 10 on that machine: pruned-t200-m2 is a
# yolov8n pruned there, finetune-t200-m2 the same yolov8n unpruned, both fine-tuned from trained weights, and
# pruned-t60-m2 the pruned one with the 60-epoch teacher (its none-seed* folders link to pruned-t200-m2's); session 11:
# shapes-y11-t200-e60-m2 and dense-y11-t200-e60-m2 have yolo11n students (from yaml) of the yolov8s teachers
TEACHERS = {"shapes": "shapes", "dense": "dense", "pruned": "shapes", "yolo26": "shapes-yolo26",
            "shapes-t200": "shapes-t200", "dense-t200": "dense-t200", "pruned-t200": "shapes-t200",
            "shapes-t200-e60": "shapes-t200", "dense-t200-e60": "dense-t200", "shapes-t200-e100": "shapes-t200",
            "dense-t200-e100": "dense-t200", "shapes-t200-e60-m2": "shapes-t200",
            "shapes-t200-m2": "shapes-t200", "dense-t200-e60-m2": "dense-t200-m2",
            "dense-t200-e100-m2": "dense-t200-m2", "pruned-t200-m2": "shapes-t200", "finetune-t200-m2": "shapes-t200",
            "pruned-t60-m2": "shapes", "shapes-y11-t200-e60-m2": "shapes-t200",
            "dense-y11-t200-e60-m2": "dense-t200-m2"}
out = Path("docs/evidence")


def mean_se_wins(deltas):
    """Mean ± SE of paired differences and how many are > 0; None for fewer than two (no SE)."""
    stats = paired_statistics(deltas)
    return None if stats is None or stats[1] is None else stats[:3]


runs_by_experiment = {}  # name → its runs, read once, for the tables and the pooled comparison below
for name in TEACHERS:
    # the project folder, {name}-exp, or {name} as the session-9 (*-m2) commands name it (runs/evidence/shapes and
    # dense are the datasets: they hold no results)
    results = []
    for folder in (f"{name}-exp", name):
        results = [RunResult(**json.loads(p.read_text()))
                   for p in Path("runs/evidence", folder).glob("*/kdloss_result.json")]
        if results:
            break
    if not results:
        continue
    runs_by_experiment[name] = results
    order = ORDER + sorted({r.method for r in results} - set(ORDER))
    results.sort(key=lambda r: (order.index(r.method), r.seed))
    teacher = RunResult(**json.loads(Path(f"docs/evidence/{TEACHERS[name]}-teacher.json").read_text()))
    rows = summarize(results, teacher, versus=None)  # the pairs between methods are printed below instead
    table = markdown_table(rows)
    (out / f"{name}.md").write_text(table + "\n")
    # runs evaluated before results recorded their machine leave the field out, as their files do
    runs = [{k: v for k, v in r.__dict__.items() if not (k == "machine" and v is None)} for r in results]
    (out / f"{name}-runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    plot_paired(rows, out / f"{name}-paired.png")
    print(f"## {name}\n{table}\n")
    for method in order:
        values = [r.map50_95 for r in results if r.method == method]
        if values:
            print(method, "seeds", [r.seed for r in results if r.method == method], "range",
                  f"{min(values):.4f}–{max(values):.4f}")
    cosine = "schedule=cosine:schedule_final_ratio=0"  # weights falling to 0 over the run (session 8)
    for a, b in ((f"bckd:logit_weight=1:{cosine}", "builtin"),
                 (f"bckd:logit_weight=1:{cosine}", "bckd:logit_weight=0.5"),
                 (f"bckd:logit_weight=1:{cosine}", "bckd"), (f"bckd+sl2:{cosine}", "builtin"),
                 (f"bckd+sl2:{cosine}", "bckd+sl2:logit_weight=0.5"), (f"bckd+sl2:{cosine}", "bckd:logit_weight=0.5"),
                 (f"bckd:{cosine}", "bckd:logit_weight=0.5"), (f"bckd+sl2:{cosine}", f"bckd:{cosine}"),
                 ("bckd:logit_weight=0.25", "bckd:logit_weight=0.5"),
                 ("bckd:schedule_warmup=0.3", "bckd:logit_weight=0.5"),
                 ("bckd:logit_weight=0", "bckd:logit_weight=0.25"),
                 ("bckd:avg_factor=positives:logit_weight=1", "bckd:logit_weight=0.5"),
                 ("bckd:avg_factor=positives:logit_weight=1", "builtin"),
                 ("bckd+sl2:logit_weight=0.5:feature_weight=12", "builtin"),
                 ("bckd+sl2:logit_weight=0.5", "builtin"), ("bckd+sl2:logit_weight=0.5", "bckd:logit_weight=0.5"),
                 ("cwd", "builtin"), ("bckd+sl2", "builtin"), ("bckd+sl2", "bckd"), ("bckd:logit_weight=2", "builtin"),
                 ("bckd:logit_weight=2", "bckd"), ("bckd:logit_weight=0.5", "builtin"),
                 ("bckd:logit_weight=0.5", "bckd"),
                 ("bckd:logit_weight=0.5:stop_epochs=30", "bckd:logit_weight=0.5"),
                 ("bckd+cwd", "builtin"), ("bckd", "builtin"), ("bckd", "bckd+cwd"), ("crosskd", "builtin"),
                 ("crosskd", "bckd"), ("bckd", "bckd:fold_teacher=false"), ("bckd:one2one=true", "bckd")):
        result = mean_se_wins(paired_deltas(results, a, b))
        if result:
            print(f"paired {a} − {b}: {result[0]:+.4f} ± {result[1]:.4f} ({result[2]} seeds won)")

# BCKD's weight, 0.5 against 1, pooled over the experiments with the 200-epoch teachers (both datasets; each seed
# of each experiment a pair), by the students' schedule and over both: docs/results.md "Choosing BCKD's weight"
for label, names in (("30-epoch students", ("shapes-t200", "dense-t200")),
                     ("60-epoch students", ("shapes-t200-e60", "dense-t200-e60")),
                     ("both schedules", ("shapes-t200", "dense-t200", "shapes-t200-e60", "dense-t200-e60"))):
    pooled = [d for name in names
              for d in paired_deltas(runs_by_experiment.get(name, []), "bckd:logit_weight=0.5", "bckd")]
    result = mean_se_wins(pooled)
    if result:
        print(f"pooled bckd:logit_weight=0.5 − bckd, 200-epoch teachers, {label}: {result[0]:+.4f} ± "
              f"{result[1]:.4f} ({result[2]}/{len(pooled)} won)")
