"""Tables and plots of the evidence runs (read back, nothing trains) into docs/evidence/."""
import json
from pathlib import Path

from kdloss.adapters.ultralytics.experiment import RunResult, markdown_table, plot_paired, summarize

ORDER = ["none", "bckd+cwd", "builtin", "bckd", "cwd", "cwd:feature_weight=10", "l2", "pkd", "bckd+ld"]
out = Path("docs/evidence")
for name in ("shapes", "dense"):
    project = Path(f"runs/evidence/{name}-exp")
    results = [RunResult(**json.loads(p.read_text())) for p in project.glob("*/kdloss_result.json")]
    results.sort(key=lambda r: (ORDER.index(r.method), r.seed))
    teacher = RunResult(**json.loads(Path(f"docs/evidence/{name}-teacher.json").read_text()))
    rows = summarize(results, teacher)
    table = markdown_table(rows)
    (out / f"{name}.md").write_text(table + "\n")
    (out / f"{name}-runs.json").write_text(json.dumps([r.__dict__ for r in results], indent=1) + "\n")
    plot_paired(rows, out / f"{name}-paired.png")
    print(f"## {name}\n{table}\n")
    for method in ORDER:
        values = [r.map50_95 for r in results if r.method == method]
        if values:
            print(method, "seeds", [r.seed for r in results if r.method == method], "range",
                  f"{min(values):.4f}–{max(values):.4f}")
