"""The ``kdloss`` command, in ultralytics' ``key=value`` style.

    kdloss distill student=yolov8n.yaml teacher=runs/detect/teacher/weights/best.pt data=data.yaml \\
        logit_loss=bckd epochs=100
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import fields

USAGE = """usage: kdloss COMMAND key=value ...

commands:
  distill   train a student while distilling from a teacher (all ultralytics train keys work)
            kdloss distill student=yolov8n.yaml teacher=teacher.pt data=data.yaml logit_loss=bckd
  demo      the main job: baseline and distilled student on a built-in dataset, shipped teacher (~9 min on 2 CPUs)
            kdloss demo [epochs=30 seeds=1 methods=none,bckd teacher=auto|train|PATH workdir=runs/kdloss-demo]
  experiment  every method × seed with identical settings, then the table (mean ± std, paired Δ ± SE)
            kdloss experiment data=data.yaml teacher=t.pt student=yolov8n.yaml seeds=3 \\
                methods=none,builtin,l2,bckd,mimic,mgd,cwd,bckd+cwd,cwd:feature_weight=10 [train=False: table only]
                [versus=builtin: also pair every method against this one, on the seeds both ran; versus=none: off]
  prune     remove channels of a YOLOv8-style detection model (torch-pruning), save a plain checkpoint
            kdloss prune model=best.pt data=data.yaml ratio=0.5 method=lamp|l1|l2|taylor [output=pruned.pt imgsz=640]
  pretrain  train a model on the built-in pretraining corpus (16 other classes), the offline stand-in for
            COCO weights; an interrupted run resumes
            kdloss pretrain model=yolov8n.yaml [epochs=40 images=3000 imgsz=128 batch=32 project=runs/kdloss-pretrain]
  help      this text (also: kdloss --help)

distill keys:
  student=PATH      model yaml, .pt checkpoint, or pruned-model checkpoint (trained as loaded);
                    detect, segment, pose or obb: its task picks ultralytics' trainer            [required]
  teacher=PATH      teacher .pt checkpoint, same classes as the data                            [required]
  data=PATH         dataset yaml                                                                [required]
{kd_keys}
  ...and every `yolo train` key: epochs, imgsz, batch, device, amp, resume, project, name, ...

losses (feature_loss=, logit_loss=; their own keys in brackets):
{losses}
"""


def _kd_help() -> str:
    from kdloss.adapters.ultralytics.config import DistillConfig

    lines = []
    for f in fields(DistillConfig):
        lines.append(f"  {f.name + '=' + str(f.default):<28}  {f.metadata['help']}")
    return "\n".join(lines)


def _losses_help() -> str:
    from kdloss.adapters.ultralytics.losses import LOSSES

    lines = []
    for spec in LOSSES:
        own = f" [{', '.join(spec.keys)}]" if spec.keys else ""
        lines.append(f"  {spec.name:<8} {spec.family:<8} {spec.help}{own}")
    return "\n".join(lines)


def parse_pairs(args: list[str], allowed: set[str]) -> dict:
    """``key=value`` words into a dict, values parsed as ultralytics does; unknown keys raise with suggestions."""
    from ultralytics.cfg import parse_key_value_pair

    out = {}
    for word in args:
        if "=" not in word:
            raise ValueError(f"'{word}' is not key=value; see `kdloss --help`")
        key, value = parse_key_value_pair(word)
        if key in out and out[key] != value:
            print(f"kdloss: warning: {key} given twice ({out[key]!r}, then {value!r}): using {value!r}",
                  file=sys.stderr)
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"'{key}' is not a valid kdloss distill key.{hint} See `kdloss --help`.")
        out[key] = value
    return out


def distill_command(args: list[str]):
    from ultralytics.utils import DEFAULT_CFG_KEYS

    from kdloss.adapters.ultralytics import DistillConfig, distill

    allowed = set(DEFAULT_CFG_KEYS) | set(DistillConfig.keys()) | {"student", "teacher"}
    allowed -= {"model", "mode", "task"}
    pairs = parse_pairs(args, allowed)
    missing = [key for key in ("student", "teacher", "data") if key not in pairs and not pairs.get("resume")]
    if missing:
        raise ValueError(f"kdloss distill needs {', '.join(k + '=...' for k in missing)}; see `kdloss --help`")
    student = pairs.pop("student", None)
    teacher = pairs.pop("teacher", None)
    if pairs.get("resume") and student is None:
        student = pairs["resume"] if isinstance(pairs["resume"], str) else None
        if student is None:
            raise ValueError("kdloss distill resume=... needs the run's last.pt: resume=path/to/last.pt")
    return distill(student=student, teacher=teacher, **pairs)


def demo_command(args: list[str]):
    from kdloss.adapters.ultralytics.demo import DEFAULTS, run_demo

    return run_demo(**parse_pairs(args, set(DEFAULTS)))


def experiment_command(args: list[str]):
    from ultralytics.utils import DEFAULT_CFG_KEYS

    from kdloss.adapters.ultralytics.experiment import parse_seeds, run_and_summarize
    from kdloss.adapters.ultralytics.tables import markdown_table, plot_paired

    allowed = (set(DEFAULT_CFG_KEYS) - {"model", "mode", "task", "name", "seed"}) | {"student", "teacher", "methods",
                                                                                    "seeds", "train", "versus"}
    pairs = parse_pairs(args, allowed)
    missing = [key for key in ("data", "student") if key not in pairs]
    if missing:
        raise ValueError(f"kdloss experiment needs {', '.join(k + '=...' for k in missing)}")
    methods = pairs.pop("methods", "none,bckd")
    methods = ["none"] if methods is None else str(methods).split(",")  # key=value parsing reads none as None
    seeds = parse_seeds(pairs.pop("seeds", 1))
    data, student, teacher = pairs.pop("data"), str(pairs.pop("student")), pairs.pop("teacher", None)
    project = pairs.pop("project", "runs/kdloss-experiment")
    train = str(pairs.pop("train", True)).lower() not in {"false", "0", "no"}
    asked = "versus" in pairs
    versus = pairs.pop("versus", "builtin")  # versus=none arrives as None: no second table
    if versus is not None and str(versus) not in methods:
        if asked:  # the default, builtin, is simply left out when it does not run
            raise ValueError(f"versus={versus}: not one of methods={','.join(methods)}")
        versus = None
    _, _, rows = run_and_summarize(data, student, teacher, methods, seeds, project, train=train,
                                   versus=None if versus is None else str(versus), **pairs)
    table = markdown_table(rows)
    print("\n" + table)
    from pathlib import Path

    Path(project).mkdir(parents=True, exist_ok=True)
    (Path(project) / "table.md").write_text(table + "\n")
    plot_paired(rows, Path(project) / "paired.png")
    return table


def prune_command(args: list[str]):
    from kdloss.adapters.ultralytics.api import check_paths

    pairs = parse_pairs(args, {"model", "data", "ratio", "method", "output", "imgsz", "device"})
    if "model" not in pairs:
        raise ValueError("kdloss prune needs model=...; see `kdloss --help`")
    check_paths(model=pairs["model"], data=pairs.get("data"))
    try:
        import torch_pruning  # noqa: F401
    except ImportError as e:
        raise ValueError('kdloss prune needs torch-pruning: pip install "kdloss[prune]"') from e
    from kdloss.adapters.ultralytics.prune import prune

    report = prune(**pairs)
    print("\n" + report.table() + f"\n\nsaved: {report.output}")
    return report


def pretrain_command(args: list[str]):
    from kdloss.adapters.ultralytics.pretrain import DEFAULTS, pretrain

    best = pretrain(**parse_pairs(args, set(DEFAULTS)))
    print(f"pretrained: {best}")
    return best


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE.format(kd_keys=_kd_help(), losses=_losses_help()))
        return 0
    command, rest = argv[0], argv[1:]
    commands = {"distill": distill_command, "demo": demo_command, "experiment": experiment_command,
                "prune": prune_command, "pretrain": pretrain_command}
    if command not in commands:
        print(f"kdloss: unknown command '{command}'. Commands: {', '.join(commands)}. See `kdloss --help`.",
              file=sys.stderr)
        return 2
    try:
        commands[command](rest)
    except ValueError as e:
        print(f"kdloss {command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
