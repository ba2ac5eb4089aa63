"""Train a student with each distillation method and seed under identical settings, then tabulate.

The table is the one distillation papers report: model, GFLOPs, params, mAP50, mAP50-95 and the change
in mAP50-95 against the same student trained without a teacher (``none``), as mean ± std over seeds,
plus paired statistics: with the same seed the baseline and a distilled student share initialisation and
data order, so each seed gives one difference Δ_i = mAP(method, i) − mAP(none, i); the table reports their
mean ± standard error (std/√n), how many seeds improved, and the share of the teacher–student gap closed.
Methods: ``none`` (no teacher), ``builtin`` (ultralytics' own ``distill_model`` distillation), a logit
or feature loss (``l1``, ``l2``, ``bckd``, ``mimic``, ``mgd``, ``cwd``) or a pair joined by ``+``
(``bckd+cwd``), optionally with kdloss settings after ``:`` (``cwd:feature_weight=10``,
``bckd+cwd:tau=2:feature_weight=3``). Every run writes ``kdloss_result.json`` when it is evaluated; runs
that have one are skipped, so an interrupted experiment continues where it stopped. The file records the
machine the run was evaluated on (torch and ultralytics versions, CPU instruction set or GPU): floating point
differs between machines and moves single runs, so a pair whose two runs come from different machines is
flagged in the table and the log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import get_flops

from kdloss.adapters.ultralytics.api import check_paths, distill
from kdloss.adapters.ultralytics.config import FEATURE_LOSSES, LOGIT_LOSSES, DistillConfig
from kdloss.adapters.ultralytics.machine import machine_fingerprint
from kdloss.adapters.ultralytics.pairing import summarize
from kdloss.adapters.ultralytics.trainer import as_loaded_trainer

RESULT_FILE = "kdloss_result.json"


@dataclass
class RunResult:
    model: str
    method: str
    seed: int
    weights: str
    gflops: float
    params: int
    map50: float
    map50_95: float
    split: str
    task_metric: str | None = None  # "mask" or "pose" for segment and pose models
    task_map50_95: float | None = None  # that metric's mAP50-95 (box mAP stays in map50/map50_95)
    machine: str | None = None  # machine_fingerprint() of where it ran; None in results written before it existed


def parse_seeds(value) -> list[int]:
    """``3`` → ``[0, 1, 2]``; ``"0,4"``, ``(0, 4)`` or ``[0, 4]`` → ``[0, 4]``; one seed: ``[2]`` or ``"2,"``.

    A bare number is a count, so ``seeds=0`` (no seed at all) is an error that says how to ask for seed 0.
    """
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"seeds={value} is a count of seeds and must be at least 1; for seed {value} alone "
                             f"write seeds=[{value}]")
        return list(range(value))
    items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
    try:
        seeds = [int(item) for item in items]
    except ValueError as e:
        raise ValueError(f"seeds={value!r}: give a count (seeds=3) or a list (seeds=0,1,2 or seeds=[2])") from e
    if not seeds:
        raise ValueError(f"seeds={value!r}: no seed given")
    return seeds


def parse_method(method: str) -> dict[str, str] | None:
    """``"bckd+cwd"`` → ``{"logit_loss": "bckd", "feature_loss": "cwd"}``; ``none``/``builtin`` → ``None``.

    Settings follow ``:`` as ``key=value`` (kdloss keys, :class:`DistillConfig`):
    ``"cwd:feature_weight=10:tau=2"`` → ``{"logit_loss": "none", "feature_loss": "cwd", "feature_weight":
    10.0, "tau": 2.0}``.
    """
    losses_part, *settings = method.split(":")
    if losses_part in {"none", "builtin"}:
        if settings:
            raise ValueError(f"method {method!r}: {losses_part} takes no settings")
        return None
    losses = {"feature_loss": "none", "logit_loss": "none"}
    for part in losses_part.split("+"):
        key = "feature_loss" if part in FEATURE_LOSSES else "logit_loss" if part in LOGIT_LOSSES else None
        if key == "logit_loss" and part != "none" and losses[key] != "none" and part not in losses[key].split("+"):
            losses[key] += f"+{part}"  # several logit losses: bckd+ld
            continue
        if key is None or part == "none" or losses[key] != "none":
            raise ValueError(f"method {method!r}: use none, builtin, one of {LOGIT_LOSSES[:-1]} and/or one of "
                             f"{FEATURE_LOSSES[:-1]} joined by '+', e.g. bckd+cwd, then optional settings "
                             "such as cwd:feature_weight=10")
        losses[key] = part
    values = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if not value or key not in DistillConfig.keys() or key in losses:
            raise ValueError(f"method {method!r}: setting {setting!r} is not key=value with a kdloss key other "
                             f"than the losses ({', '.join(k for k in DistillConfig.keys() if k not in losses)})")
        values[key] = value
    parsed = DistillConfig.from_dict({**losses, **values})  # validates and converts the values
    return {**losses, **{key: getattr(parsed, key) for key in values}}


def run_name(method: str, seed: int) -> str:
    """Folder of one run: ``bckd+cwd:tau=2`` seed 0 → ``bckd_cwd-tau2-seed0``; a path in a setting
    (``bckd:unlabeled=/data/extra``) stays one folder: ``bckd-unlabeled_data_extra-seed0``."""
    name = method.replace("+", "_").replace(":", "-").replace("=", "").replace(",", "_").replace("\\", "/")
    name = "_".join(part for part in name.split("/") if part) if "/" in name else name
    return f"{name}-seed{seed}"


def evaluation_split(data: str | Path) -> str:
    """``test`` when the dataset yaml names a test split, else ``val``."""
    from ultralytics.data.utils import check_det_dataset

    return "test" if check_det_dataset(str(data)).get("test") else "val"


def evaluate(weights: str | Path, data: str | Path, imgsz: int, split: str, method: str, seed: int,
             device: str | None = None) -> RunResult:
    model = YOLO(str(weights))
    metrics = model.val(data=str(data), imgsz=imgsz, split=split, plots=False, verbose=False, device=device,
                        batch=16, workers=0)
    name = Path(str(model.model.yaml.get("yaml_file", weights))).stem
    task_metric = next((label for attr, label in (("seg", "mask"), ("pose", "pose")) if hasattr(metrics, attr)), None)
    task_map = float(getattr(metrics, "seg" if task_metric == "mask" else "pose").map) if task_metric else None
    return RunResult(model=name, method=method, seed=seed, weights=str(weights),
                     gflops=round(get_flops(model.model, 640), 3),
                     params=sum(p.numel() for p in model.model.parameters()),
                     map50=float(metrics.box.map50), map50_95=float(metrics.box.map), split=split,
                     task_metric=task_metric, task_map50_95=task_map, machine=machine_fingerprint(device))


def trained_before(run_dir: Path) -> str:
    """What an earlier attempt left in ``run_dir``: ``"finished"`` (``best.pt`` and a finished ``last.pt``, which
    ultralytics marks with epoch -1), ``"interrupted"`` (an unfinished ``last.pt``) or ``"nothing"`` (no
    checkpoint, or one that cannot be read: a write cut short)."""
    from kdloss.adapters.ultralytics.preflight import UNREADABLE

    weights = run_dir / "weights"
    if not (weights / "last.pt").is_file():
        return "nothing"
    try:
        epoch = torch.load(weights / "last.pt", map_location="cpu", weights_only=False).get("epoch", -1)
    except UNREADABLE as e:
        LOGGER.warning(f"kdloss experiment: {weights / 'last.pt'} cannot be read ({type(e).__name__}): trained again")
        return "nothing"
    if epoch != -1:
        return "interrupted"
    return "finished" if (weights / "best.pt").is_file() else "nothing"


def train_one(method: str, seed: int, student: str, teacher: str | None, data: str, project: Path,
              train_args: dict) -> Path:
    """Train one (method, seed) run. A run interrupted before (an unfinished ``last.pt``) is resumed with its own
    settings; ultralytics' resume does not restore the random state, so its later epochs draw another
    augmentation order than an uninterrupted run would (the log says so). A run that finished training but
    was not evaluated is not trained again."""
    name = run_name(method, seed)
    before = trained_before(project / name)
    if before == "finished":
        LOGGER.info(f"kdloss experiment: {name} finished training before; evaluating it")
        return project / name
    if before == "interrupted":
        last = project / name / "weights" / "last.pt"
        LOGGER.warning(f"kdloss experiment: resuming {name} from {last} (its later epochs see another augmentation "
                       "order than an uninterrupted run)")
        if method in ("none", "builtin"):
            model = YOLO(str(last))
            model.train(trainer=as_loaded_trainer(model.task), resume=str(last))
        else:
            distill(str(last), resume=str(last))
        return project / name
    args = {**train_args, "data": str(data), "seed": seed, "deterministic": True, "project": str(project),
            "name": name, "exist_ok": True}
    losses = parse_method(method)
    if method in ("none", "builtin"):
        model = YOLO(student)
        # a loaded (e.g. pruned) student is fine-tuned as it is, as kdloss's own methods train it
        model.train(trainer=as_loaded_trainer(model.task), **({"distill_model": str(teacher)} if method == "builtin"
                                                             else {}), **args)
    else:
        distill(student, teacher, **losses, **args)
    return project / name


def run_experiment(data: str | Path, student: str, teacher: str | None, methods: list[str], seeds: list[int],
                   project: str | Path, train: bool = True, **train_args) -> list[RunResult]:
    """Train and evaluate every (method, seed); returns the results, skipping runs already evaluated.
    ``train=False`` only reads back the runs that are done (the table of an experiment still running)."""
    for method in methods:
        parse_method(method)
        if method != "none" and not teacher:
            raise ValueError(f"method {method!r} needs teacher=...")
    check_paths(student=student, teacher=teacher, data=data)
    project = Path(project).resolve()
    split = evaluation_split(data)
    imgsz = int(train_args.get("imgsz", 640))
    results = []
    total = len(methods) * len(seeds)
    for i, (method, seed) in enumerate(((m, s) for m in methods for s in seeds), 1):
        run_dir = project / run_name(method, seed)
        done = run_dir / RESULT_FILE
        if done.exists():
            LOGGER.info(f"kdloss experiment [{i}/{total}] {method} seed {seed}: done before, skipping")
            results.append(RunResult(**json.loads(done.read_text())))
            continue
        if not train:
            LOGGER.info(f"kdloss experiment [{i}/{total}] {method} seed {seed}: not done yet, left out (train=False)")
            continue
        LOGGER.info(f"kdloss experiment [{i}/{total}] training {student} with {method}, seed {seed}")
        run_dir = train_one(method, seed, student, teacher, str(data), project, train_args)
        result = evaluate(run_dir / "weights" / "best.pt", data, imgsz, split, method, seed, train_args.get("device"))
        done.write_text(json.dumps(asdict(result), indent=1))
        results.append(result)
    return results


def run_and_summarize(data: str | Path, student: str, teacher: str | None, methods: list[str], seeds: list[int],
                      project: str | Path, train: bool = True, versus: str | None = "builtin", **train_args
                      ) -> tuple[list[RunResult], RunResult | None, list[dict]]:
    """:func:`run_experiment`, then the teacher's own evaluation (if any) and the summary rows
    (:func:`summarize`, pairing every method against ``versus`` too when it ran)."""
    results = run_experiment(data, student, teacher, methods, seeds, project, train=train, **train_args)
    teacher_result = None
    if teacher:
        teacher_result = evaluate(teacher, data, int(train_args.get("imgsz", 640)), evaluation_split(data), "teacher",
                                  0, train_args.get("device"))
    rows = summarize(results, teacher_result, versus=versus)
    for row in rows:
        for key, reference in (("cross_machine", "none"), ("versus_cross_machine", versus)):
            if row.get(key):
                LOGGER.warning(f"kdloss experiment: {row['method']} seeds {row[key]} were paired with {reference} "
                               "runs made on another machine; floating point differs between machines, so these "
                               "differences mix in that noise")
    return results, teacher_result, rows
