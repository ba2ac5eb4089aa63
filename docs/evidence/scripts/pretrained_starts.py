"""The pretrained-start experiments (docs/experiments/pretrained-starts.md), one stage at a time. From the
repository root:

    .venv/bin/python docs/evidence/scripts/pretrained_starts.py STAGE [METHODS]

Stages: data, pretrain, baselines, teachers [TARGET ...], q1 [TARGET ...], search [CANDIDATE ...], confirm METHOD,
probe [METHOD], probe-fresh, prune [METHOD], choose, tables [METHOD] (docs/experiments/pretrained-starts-tables.md);
round 2 (docs/experiments/pretrained-starts-round2.md): search2 [CANDIDATE ...], baselines2, choose2,
confirm2 METHOD [dense|craters|pruned ...], tables2 [METHOD]; round 3 (docs/experiments/pretrained-starts-round3.md,
100-epoch students): baselines3, search3 [CANDIDATE ...], choose3, confirm3 METHOD [dense|craters|pruned ...],
tables3 [METHOD]; round 4 (docs/experiments/pretrained-starts-round4.md, unlabelled images): search4 [SEED ...],
choose4, confirm4 [dense|pruned ...] (baselines4 [dense|pruned ...]: its `none` runs alone), tables4;
round 5 (docs/experiments/pretrained-starts-round5.md, the labelled images as unlabelled ones): search5 [SEED ...],
choose5, confirm5 [craters|dense|pruned ...] [SEED ...] (baselines5: craters' `none` runs alone), tables5.
Each resumes what is unfinished (ultralytics' resume for the pretraining and the teachers) and skips what is done
(``kdloss experiment`` skips runs that have a result). Runs go to ``runs/evidence/pretrained/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pretrained_tables import train_as_unlabeled
from ultralytics import YOLO

from kdloss.adapters.cli import main as kdloss
from kdloss.adapters.ultralytics.craters import make_craters_dataset
from kdloss.adapters.ultralytics.data import make_shapes_dataset
from kdloss.adapters.ultralytics.experiment import trained_before
from kdloss.adapters.ultralytics.offline import use_local_fonts
from kdloss.adapters.ultralytics.pretrain import pretrain

EVIDENCE = Path("runs/evidence")
OUT = EVIDENCE / "pretrained"
TARGETS = ("shapes", "dense", "craters")
SEEDS = "[0,1,2]"
STUDENT_ARGS = ["imgsz=128", "batch=32", "workers=2", "device=cpu", "amp=False", "plots=False"]
SEARCH = ("bckd", "bckd:schedule=cosine:schedule_final_ratio=0.01", "bckd:stop_epochs=10", "cwd", "bckd+cwd",
          "bckd:avg_factor=positives", "bckd:logit_weight=0.1", "bckd:bckd_cls_weight=0")
COSINE = "bckd:schedule=cosine:schedule_final_ratio=0.01"  # round 1's choice, round 2's base
# round 2's candidates, fixed in docs/experiments/pretrained-starts-round2.md before their runs
SEARCH2 = ("bckd:logit_weight=1.5:schedule=cosine:schedule_final_ratio=0.01",
           "bckd+ld:schedule=cosine:schedule_final_ratio=0.01", "bckd+cwd:schedule=cosine:schedule_final_ratio=0.01")
# round 3: ultralytics' default length for the students; its two methods, fixed before its runs
LONG_EPOCHS = 100
SEARCH3 = ("bckd", "bckd+cwd:schedule=cosine:schedule_final_ratio=0.01")
# round 4: the default with 1024 unlabelled shapes images (seed 1; the labelled set is seed 0), fixed before its runs
UNLABELED_SHAPES = "runs/evidence/shapes-unlabeled/images/train"
UNLABELED = f"bckd:unlabeled={UNLABELED_SHAPES}"
# round 5: the same, with the labelled training images themselves as the unlabelled ones, fixed before its runs
TRAIN_AS_UNLABELED = train_as_unlabeled("shapes")
CRATERS_SEEDS = ("0", "1", "2", "3", "4", "5")  # craters' six seeds since round 2, for its SE


def unlabeled_images(target: str = "shapes") -> str:
    """The generator's images for ``unlabeled=`` (their labels are never read), written once."""
    make_shapes_dataset(EVIDENCE / f"{target}-unlabeled", train=1024, val=0, test=0, imgsz=128, seed=1,
                        kind="dense" if target == "dense" else "shapes")
    return f"runs/evidence/{target}-unlabeled/images/train"


def data(target: str) -> Path:
    if target == "craters":
        return make_craters_dataset(EVIDENCE / "craters")
    kind = "dense" if target == "dense" else "shapes"
    return make_shapes_dataset(EVIDENCE / target, train=256, val=64, test=64, imgsz=128, kind=kind)


def pretrained(size: str) -> Path:
    """``assets/corpus-yolov8{size}.pt``, copied from its finished pretraining run."""
    asset = Path("assets") / f"corpus-yolov8{size}.pt"
    if not asset.is_file():
        best = pretrain(model=f"yolov8{size}.yaml")
        shutil.copyfile(best, asset)
    return asset


def teacher(target: str) -> Path:
    """The pretrained yolov8s fine-tuned on ``target`` with ultralytics' fine-tune defaults (100 epochs,
    batch 16), imgsz 128, seed 0; an interrupted training is resumed. A finished training's ``best.pt`` is
    copied to ``assets/corpus-yolov8s-on-{target}.pt``; where that copy exists it is the teacher, so every
    checkout distils from the same file (run folders do not travel with a checkout; delete the copy to train the
    teacher again)."""
    shipped = (Path("assets") / f"corpus-yolov8s-on-{target}.pt").resolve()
    if shipped.is_file():
        return shipped
    run = (OUT / f"teacher-{target}").resolve()
    best = run / "weights" / "best.pt"
    before = trained_before(run)
    if before != "finished":
        use_local_fonts()  # ultralytics' dataset check would download a font
        if before == "interrupted":
            YOLO(str(run / "weights" / "last.pt")).train(resume=True)
        else:
            YOLO(str(pretrained("s"))).train(data=str(data(target)), epochs=100, batch=16, imgsz=128, seed=0,
                                             workers=2, device="cpu", amp=False, plots=False,
                                             project=str(run.parent), name=run.name, exist_ok=True, verbose=False)
    shutil.copyfile(best, shipped)
    return shipped


def experiment(target: str, methods: str, student: Path | str | None = None, project: str | None = None,
               with_teacher: bool = True, seeds: str = SEEDS, every_epoch: bool = False, epochs: int = 30) -> None:
    args = ["experiment", f"data={data(target)}", f"student={student or pretrained('n')}", f"methods={methods}",
            f"seeds={seeds}", f"project={OUT / (project or target)}", *STUDENT_ARGS, f"epochs={epochs}"]
    if (target == "shapes" and project is None) or every_epoch:
        args.append("save_period=1")  # every epoch's checkpoint, for question 2's gradient and disagreement probes
    if with_teacher:
        args.append(f"teacher={teacher(target)}")
    print("kdloss " + " ".join(args), flush=True)
    if kdloss(args) != 0:
        raise SystemExit(f"kdloss experiment failed on {target}")


def pruned_student() -> Path:
    """The pretrained yolov8n fine-tuned plainly on shapes (seed 0's 30-epoch baseline), pruned to about half
    its GFLOPs with LAMP, at ``assets/corpus-yolov8n-on-shapes-pruned.pt``; where that copy exists it is the
    student, so every checkout prunes nothing and trains the same file (delete it to make it again)."""
    shipped = Path("assets") / "corpus-yolov8n-on-shapes-pruned.pt"
    if shipped.is_file():
        return shipped.resolve()
    output = OUT / "yolov8n-shapes-pruned.pt"
    if not output.is_file():
        experiment("shapes", "none", with_teacher=False, seeds="[0]")
        fine_tuned = OUT / "shapes" / "none-seed0" / "weights" / "best.pt"
        code = kdloss(["prune", f"model={fine_tuned}", f"data={data('shapes')}", "ratio=0.5", "method=lamp",
                       "imgsz=128", f"output={output}"])
        if code != 0:
            raise SystemExit("kdloss prune failed")
    shutil.copyfile(output, shipped)
    return shipped.resolve()


def run(stage: str, extra: list[str]) -> None:
    if stage == "data":
        for target in TARGETS:
            print(data(target))
    elif stage == "pretrain":
        print(pretrained("n"), pretrained("s"))
    elif stage == "baselines":
        for target in TARGETS:
            experiment(target, "none", with_teacher=False)
    elif stage == "teachers":  # optionally only some targets, e.g. two processes on two cores
        for target in extra or TARGETS:
            print(teacher(target))
    elif stage == "q1":
        for target in extra or TARGETS:
            experiment(target, "none,builtin,bckd")
    elif stage == "search":  # optionally only some candidates, e.g. two processes on two cores
        unknown = sorted(set(extra) - set(SEARCH))
        if unknown:
            raise SystemExit(f"not a pre-registered candidate: {unknown}")
        experiment("shapes", ",".join(("none", *(extra or SEARCH))))
    elif stage == "search2":  # round 2, on shapes; no per-epoch checkpoints (no probes planned)
        unknown = sorted(set(extra) - set(SEARCH2))
        if unknown:
            raise SystemExit(f"not a pre-registered round-2 candidate: {unknown}")
        experiment("shapes", ",".join(("none", *(extra or SEARCH2))), project="shapes")
    elif stage == "choose2":  # round 2's choice: the last line is the method, or "none chosen"
        from pretrained_tables import choose_above, results

        chosen, reasons = choose_above(results(OUT / "shapes"), SEARCH2, COSINE)
        print("\n".join(reasons))
        print(chosen or "none chosen")
    elif stage == "baselines2":  # craters' plain fine-tuning on seeds 3-5, which confirm2 pairs against
        experiment("craters", "none", with_teacher=False, seeds="[3,4,5]")
    elif stage == "confirm2":  # round 2's choice, not retuned; craters on six seeds (the plan says why)
        if not extra or extra[0] not in SEARCH2:
            raise SystemExit(f"confirm2 needs the round-2 choice, one of {SEARCH2}")
        targets = extra[1:] or ["dense", "craters", "pruned"]  # optionally some, e.g. two processes
        if "dense" in targets:
            experiment("dense", f"none,{extra[0]}")
        if "craters" in targets:
            experiment("craters", f"none,{extra[0]}", seeds="[0,1,2,3,4,5]")
        if "pruned" in targets:
            experiment("shapes", f"none,{extra[0]}", student=pruned_student(), project="shapes-pruned")
    elif stage == "confirm":
        if not extra:
            raise SystemExit("confirm needs the chosen METHOD")
        for target in ("dense", "craters"):
            experiment(target, f"none,{extra[0]}")
    elif stage == "probe":  # question 2, on seed 0 of plain fine-tuning and of the default recipe (and extra)
        from probe_trained_start import main as probe

        from kdloss.adapters.ultralytics.experiment import run_name

        for method in ("none", "bckd", *extra):
            loss = "bckd" if method == "none" else method  # the plain run is probed with the default's loss
            probe([str(OUT / "shapes" / run_name(method, 0)), str(teacher("shapes")), str(data("shapes")),
                   f"method={loss}"])
    elif stage == "choose":  # the search's choice by the pre-registered rule: the last line is the method
        from pretrained_tables import choose, results

        chosen, reasons = choose(results(OUT / "shapes"), SEARCH)
        print("\n".join(reasons))
        print(chosen)
    elif stage == "probe-fresh":  # question 2's other side: a yolov8n from random weights, seed 0, same teacher
        from probe_trained_start import main as probe

        from kdloss.adapters.ultralytics.experiment import run_name

        experiment("shapes", "none,bckd", student="yolov8n.yaml", project="shapes-fresh", seeds="[0]",
                   every_epoch=True)
        for method in ("none", "bckd"):
            probe([str(OUT / "shapes-fresh" / run_name(method, 0)), str(teacher("shapes")), str(data("shapes")),
                   "method=bckd"])
    elif stage == "tables":  # optionally the chosen candidate, for the confirmation tables
        from pretrained_tables import write

        print(write(OUT, data, teacher, SEARCH, extra[0] if extra else None))
    elif stage == "tables2":  # round 2's tables, optionally with its choice's confirmation
        from pretrained_tables import write_round2

        print(write_round2(OUT, data, teacher, SEARCH2, COSINE, extra[0] if extra else None))
    elif stage == "baselines3":  # round 3: plain 100-epoch fine-tuning on shapes, which needs no teacher
        experiment("shapes", "none", with_teacher=False, project="shapes-100", epochs=LONG_EPOCHS)
    elif stage == "search3":  # optionally only some of its methods, e.g. two processes on two cores
        unknown = sorted(set(extra) - set(SEARCH3))
        if unknown:
            raise SystemExit(f"not a pre-registered round-3 method: {unknown}")
        # without `none`, which baselines3 trains (perhaps at the same time, on the other core)
        experiment("shapes", ",".join(extra or SEARCH3), project="shapes-100", epochs=LONG_EPOCHS)
    elif stage == "choose3":  # round 3's rule: the last line is the method, or "none chosen"
        from pretrained_tables import choose_clear, results

        chosen, reasons = choose_clear(results(OUT / "shapes-100"), SEARCH3, min_se=2.0)
        print("\n".join(reasons))
        print(chosen or "none chosen")
    elif stage == "confirm3":  # round 3's choice at 100 epochs, not retuned; craters on six seeds
        if not extra or extra[0] not in SEARCH3:
            raise SystemExit(f"confirm3 needs the round-3 choice, one of {SEARCH3}")
        targets = extra[1:] or ["dense", "craters", "pruned"]
        if "dense" in targets:
            experiment("dense", f"none,{extra[0]}", project="dense-100", epochs=LONG_EPOCHS)
        if "craters" in targets:
            experiment("craters", f"none,{extra[0]}", seeds="[0,1,2,3,4,5]", project="craters-100",
                       epochs=LONG_EPOCHS)
        if "pruned" in targets:
            experiment("shapes", f"none,{extra[0]}", student=pruned_student(), project="shapes-pruned-100",
                       epochs=LONG_EPOCHS)
    elif stage == "tables3":
        from pretrained_tables import write_round3

        print(write_round3(OUT, data, teacher, SEARCH3, extra[0] if extra else None))
    elif stage == "search4":  # round 4: optionally some seeds, e.g. two processes on two cores
        assert unlabeled_images("shapes") == UNLABELED_SHAPES
        seeds = f"[{','.join(extra)}]" if extra else SEEDS
        experiment("shapes", UNLABELED, project="shapes-100", epochs=LONG_EPOCHS, seeds=seeds)
    elif stage == "choose4":  # round 4's rule: the last line is the method, or "none chosen"
        from pretrained_tables import choose_clear, round4_runs

        chosen, reasons = choose_clear(round4_runs(OUT, UNLABELED), (UNLABELED,), min_se=2.0)
        print("\n".join(reasons))
        print(chosen or "none chosen")
    elif stage == "confirm4":  # round 4's method, not retuned, where choose4 sends it forward: dense, pruned
        targets = extra or ["dense", "pruned"]
        if "dense" in targets:
            experiment("dense", f"none,bckd:unlabeled={unlabeled_images('dense')}", project="dense-100",
                       epochs=LONG_EPOCHS)
        if "pruned" in targets:
            assert unlabeled_images("shapes") == UNLABELED_SHAPES
            experiment("shapes", f"none,{UNLABELED}", student=pruned_student(), project="shapes-pruned-100",
                       epochs=LONG_EPOCHS)
    elif stage == "baselines4":  # confirm4's `none` runs alone, no teacher: beside a teacher's training
        targets = extra or ["dense", "pruned"]
        if "dense" in targets:
            experiment("dense", "none", with_teacher=False, project="dense-100", epochs=LONG_EPOCHS)
        if "pruned" in targets:
            experiment("shapes", "none", with_teacher=False, student=pruned_student(), project="shapes-pruned-100",
                       epochs=LONG_EPOCHS)
    elif stage == "search5":  # round 5: optionally some seeds, e.g. two processes on two cores
        seeds = f"[{','.join(extra)}]" if extra else SEEDS
        experiment("shapes", TRAIN_AS_UNLABELED, project="shapes-100", epochs=LONG_EPOCHS, seeds=seeds)
    elif stage == "choose5":  # round 5's rule: the last line is the method, or "none chosen"
        from pretrained_tables import ROUND5_JSON, choose_clear, round4_runs

        runs = round4_runs(OUT, TRAIN_AS_UNLABELED, committed=ROUND5_JSON)
        chosen, reasons = choose_clear(runs, (TRAIN_AS_UNLABELED,), min_se=2.0)
        print("\n".join(reasons))
        print(chosen or "none chosen")
    elif stage == "confirm5":  # round 5's method, not retuned, where choose5 sends it forward: craters, dense, pruned
        targets = [e for e in extra if not e.isdigit()] or ["craters", "dense"]
        chosen_seeds = [e for e in extra if e.isdigit()]  # optionally some seeds, e.g. two processes on two cores
        if "craters" in targets:
            experiment("craters", f"none,{train_as_unlabeled('craters')}", project="craters-100", epochs=LONG_EPOCHS,
                       seeds=f"[{','.join(chosen_seeds or CRATERS_SEEDS)}]")
        if "dense" in targets:
            experiment("dense", f"none,{train_as_unlabeled('dense')}", project="dense-100", epochs=LONG_EPOCHS,
                       seeds=f"[{','.join(chosen_seeds)}]" if chosen_seeds else SEEDS)
        if "pruned" in targets:  # the pruned student on shapes: the adoption rule's condition for pruned starts
            experiment("shapes", f"none,{TRAIN_AS_UNLABELED}", student=pruned_student(), project="shapes-pruned-100",
                       epochs=LONG_EPOCHS, seeds=f"[{','.join(chosen_seeds)}]" if chosen_seeds else SEEDS)
    elif stage == "baselines5":  # confirm5's craters `none` runs alone, no teacher, before choose5 (not read by it)
        experiment("craters", "none", with_teacher=False, seeds=f"[{','.join(CRATERS_SEEDS)}]",
                   project="craters-100", epochs=LONG_EPOCHS)
    elif stage == "tables5":
        from pretrained_tables import write_round5

        print(write_round5(OUT, UNLABELED))
    elif stage == "tables4":
        from pretrained_tables import write_round4

        print(write_round4(OUT, data, teacher, UNLABELED))
    elif stage == "prune":
        methods = ",".join(("none", "builtin", "bckd", *extra))
        experiment("shapes", methods, student=pruned_student(), project="shapes-pruned")
    else:
        raise SystemExit(f"unknown stage {stage!r}: data, pretrain, baselines, teachers, q1, search, confirm, probe, "
                         "probe-fresh, prune, choose, tables, search2, baselines2, choose2, confirm2, tables2, "
                         "baselines3, search3, choose3, confirm3, tables3, search4, choose4, confirm4, baselines4, "
                         "tables4, search5, choose5, confirm5, baselines5, tables5")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    run(sys.argv[1], sys.argv[2:])
