"""Bad input to ``kdloss distill`` is one sentence and exit code 2 before any training, with no run folder left
behind; settings that would be silently ignored are warned about."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from kdloss.adapters import cli
from kdloss.adapters.ultralytics import DistillConfig, preflight
from kdloss.adapters.ultralytics.data import make_shapes_dataset

TRAIN = ["imgsz=64", "batch=4", "workers=0", "plots=False", "amp=False", "device=cpu", "epochs=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), train=4, val=2, imgsz=64)


def checkpoint(path: Path, nc: int = 6, **fields) -> Path:
    """An ultralytics-style checkpoint of an untrained yolov8n (no training needed to test the checks)."""
    model = DetectionModel("yolov8n.yaml", nc=nc, verbose=False)
    model.names = {i: f"class{i}" for i in range(nc)}
    torch.save({"model": model, "epoch": -1, "train_args": {"imgsz": 64}, **fields}, path)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return checkpoint(tmp_path_factory.mktemp("teacher") / "teacher.pt")


def kdloss_distill(args: list[str], capsys) -> tuple[int, list[str]]:
    code = cli.main(["distill", *args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("kdloss distill:")]


def bad_teachers(folder: Path, teacher: Path) -> dict[str, tuple[Path, str]]:
    (folder / "run" / "weights").mkdir(parents=True)
    (folder / "run" / "weights" / "best.pt").write_bytes(teacher.read_bytes())
    (folder / "text.pt").write_text("not a checkpoint\n")
    (folder / "empty.pt").write_bytes(b"")
    (folder / "truncated.pt").write_bytes(teacher.read_bytes()[:5000])
    torch.save(torch.load(teacher, weights_only=False)["model"].state_dict(), folder / "state_dict.pt")
    torch.save([1, 2, 3], folder / "list.pt")
    return {
        "folder": (folder / "run", r"is a folder: give the checkpoint file, e\.g\. teacher=.*weights/best\.pt"),
        "text": (folder / "text.pt", r"is not a loadable PyTorch checkpoint \(truncated, corrupt or not a \.pt"),
        "empty": (folder / "empty.pt", r"the file is empty"),
        "truncated": (folder / "truncated.pt", r"is not a loadable PyTorch checkpoint"),
        "state_dict": (folder / "state_dict.pt", r"holds a bare state_dict"),
        "list": (folder / "list.pt", r"holds a list, not an ultralytics model checkpoint"),
    }


@pytest.mark.parametrize("case", ["folder", "text", "empty", "truncated", "state_dict", "list"])
def test_a_bad_teacher_file_is_one_line_and_exit_code_2(case, data, teacher, tmp_path, capsys):
    path, message = bad_teachers(tmp_path / "bad", teacher)[case]
    code, errors = kdloss_distill(["student=yolov8n.yaml", f"teacher={path}", f"data={data}",
                                   f"project={tmp_path / 'runs'}", "name=r", *TRAIN], capsys)
    assert code == 2 and len(errors) == 1, errors
    assert re.search(message, errors[0]), errors[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["epochs=abc"], r"'epochs=abc' is of invalid type str"),
    (["imgsz=-5"], r"imgsz=-5 must be a positive whole number of pixels"),
    (["imgsz=0"], r"imgsz=0 must be a positive whole number"),
    (["epochs=0"], r"'epochs=0' is an invalid value. 'epochs' must be >= 1"),
    (["stop_epochs=2"], r"stop_epochs=2 >= epochs=2: distillation would be off for the whole run"),
    (["stop_epochs=5"], r"stop_epochs=5 >= epochs=2"),
])
def test_bad_training_keys_are_one_line_and_exit_code_2(args, message, data, teacher, tmp_path, capsys):

    code, errors = kdloss_distill(["student=yolov8n.yaml", f"teacher={teacher}", f"data={data}",
                                   f"project={tmp_path / 'runs'}", "name=r", *TRAIN, *args], capsys)
    assert code == 2 and len(errors) == 1 and re.search(message, errors[0]), errors
    assert not (tmp_path / "runs").exists()


def test_a_data_yaml_whose_images_are_missing(teacher, tmp_path, capsys):
    yaml = tmp_path / "data.yaml"
    yaml.write_text(f"path: {tmp_path / 'nowhere'}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n")
    code, errors = kdloss_distill(["student=yolov8n.yaml", f"teacher={teacher}", f"data={yaml}",
                                   f"project={tmp_path / 'runs'}", "name=r", *TRAIN], capsys)
    assert code == 2 and len(errors) == 1, errors
    assert f"its train images, {tmp_path / 'nowhere' / 'images' / 'train'}, are not on this machine" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_resuming_a_finished_run_says_there_is_nothing_left(teacher, tmp_path, capsys):
    """Before, ultralytics started a new run on its defaults (coco8.yaml, no teacher) and tried to download."""
    last = checkpoint(tmp_path / "last.pt", train_args={"epochs": 3, "distill_model": str(teacher)})
    for args in ([f"student={last}", "resume=True"], [f"resume={last}"]):
        code, errors = kdloss_distill(args, capsys)
        assert code == 2 and len(errors) == 1, errors
        assert f"resume={last}: this run finished (3 epochs), nothing is left to resume" in errors[0]


@pytest.mark.parametrize("missing", ["distill_model", "data"])
def test_resuming_without_the_runs_teacher_or_data_names_the_path(missing, data, teacher, tmp_path, capsys):
    args = {"epochs": 3, "distill_model": str(teacher), "data": str(data), missing: str(tmp_path / "gone" / "x.yaml")}
    if missing == "distill_model":
        args[missing] = str(tmp_path / "gone" / "teacher.pt")
    last = checkpoint(tmp_path / "last.pt", epoch=0, optimizer={"state": {}}, train_args=args)
    code, errors = kdloss_distill([f"resume={last}"], capsys)
    assert code == 2 and len(errors) == 1, errors
    what = "teacher" if missing == "distill_model" else "data"
    assert f"the run's {what}, {args[missing]}, is not on this machine; pass {what}=PATH" in errors[0]


def test_a_run_that_fails_after_ultralytics_made_its_folder_leaves_none(data, tmp_path, capsys):
    """A teacher of other classes with a logit loss fails where the model is built, inside ultralytics' run."""
    other = checkpoint(tmp_path / "other.pt", nc=3)
    code, errors = kdloss_distill(["student=yolov8n.yaml", f"teacher={other}", f"data={data}",
                                   f"project={tmp_path / 'runs'}", "name=r", *TRAIN], capsys)
    assert code == 2 and errors and "teacher predicts 3 classes but the student 6" in errors[-1], errors
    assert not (tmp_path / "runs" / "r").exists()


def test_remove_failed_run_keeps_checkpoints_trained_epochs_and_older_files(tmp_path):
    import os
    import time

    runs = {name: tmp_path / name for name in ("weights", "epochs", "older", "failed")}
    for run in runs.values():
        (run / "weights").mkdir(parents=True)
        (run / "args.yaml").write_text("x: 1\n")
        (run / "labels.jpg").write_bytes(b"plot")  # ultralytics' label plot, written before epoch 1
    (runs["weights"] / "weights" / "last.pt").write_bytes(b"x")
    (runs["epochs"] / "results.csv").write_text("epoch,loss\n1,0.5\n")  # save=False: an epoch, no checkpoint
    (runs["older"] / "notes.txt").write_text("mine\n")
    started = time.time()
    os.utime(runs["older"] / "notes.txt", (started - 100, started - 100))
    for run in runs.values():
        if run.name != "older":
            for f in run.rglob("*"):
                os.utime(f, (started, started))
        preflight.remove_failed_run(run, started)
    assert (runs["weights"] / "weights" / "last.pt").exists() and (runs["epochs"] / "results.csv").exists()
    assert (runs["older"] / "notes.txt").exists()
    assert not runs["failed"].exists()


def test_a_trainer_without_a_teacher_leaves_no_folder(data, tmp_path):
    from kdloss.adapters.ultralytics import DistillationTrainer

    with pytest.raises(ValueError, match="no teacher: pass teacher="):
        DistillationTrainer(overrides={"model": "yolov8n.yaml", "data": str(data), "project": str(tmp_path),
                                       "name": "r"})
    assert not (tmp_path / "r").exists()


def test_resume_true_resumes_the_given_checkpoint_not_the_newest_run(data, teacher, tmp_path):
    """ultralytics' resume=True picks the newest run anywhere; kdloss passes on the checkpoint it was given."""
    run = tmp_path / "runs" / "a"
    (run / "weights").mkdir(parents=True)
    last = checkpoint(run / "weights" / "last.pt", epoch=0, optimizer={"state": {}},
                      train_args={"epochs": 3, "distill_model": str(teacher), "data": str(data)})
    overrides = {"model": str(last), "resume": True}
    preflight.check_run(overrides, DistillConfig(), set())
    assert overrides["resume"] == str(last) and overrides["save_dir"] == str(run)


def test_check_data_takes_a_validation_key_and_refuses_a_missing_file(data, tmp_path):
    text = data.read_text().replace("val: images/val", "validation: images/val")
    (tmp_path / "v.yaml").write_text(text)
    preflight.check_data(tmp_path / "v.yaml")
    with pytest.raises(ValueError, match=r"data=missing/x\.yaml: no such file"):
        preflight.check_data("missing/x.yaml")
    preflight.check_data("coco8.yaml")  # ships with ultralytics: left to it


def test_check_run_warns_about_ignored_keys_and_a_far_image_size(data, teacher, monkeypatch):
    warnings = []
    monkeypatch.setattr(preflight.LOGGER, "warning", warnings.append)
    config = DistillConfig.from_dict({"crosskd_layer": 2, "tau": 2, "ld_temperature": 5})
    overrides = {"distill_model": str(teacher), "data": str(data), "imgsz": 160, "epochs": 2}
    preflight.check_run(overrides, config, {"crosskd_layer", "tau", "ld_temperature"})
    text = "\n".join(warnings)
    for key, owner in (("crosskd_layer=2", "crosskd"), ("tau=2.0", "cwd"), ("ld_temperature=5.0", "ld")):
        assert f"{key} has no effect: it belongs to {owner}" in text
    assert "imgsz=160 is far from the teacher's training imgsz=64" in text
    warnings.clear()
    near = {"distill_model": str(teacher), "data": str(data), "imgsz": 80, "epochs": 2}
    preflight.check_run(near, DistillConfig.from_dict({"tau": 2, "feature_loss": "cwd"}), {"tau"})
    assert warnings == []


def test_check_run_stores_absolute_paths(data, teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(teacher.parent)
    overrides = {"distill_model": teacher.name, "data": str(data), "project": "runs", "epochs": 2, "imgsz": 64}
    preflight.check_run(overrides, DistillConfig(), set())
    assert overrides["distill_model"] == str(teacher.resolve())
    assert overrides["project"] == "runs"  # ultralytics places a relative project under its runs folder, as ever


def test_a_rebuilt_trainer_is_not_checked_or_warned_about_again(teacher, monkeypatch):
    """ultralytics' DDP workers rebuild the trainer from the run's args (every kdloss key, save_dir set)."""
    warnings = []
    monkeypatch.setattr(preflight.LOGGER, "warning", warnings.append)
    overrides = {"distill_model": str(teacher), "data": "coco8.yaml", "save_dir": "/somewhere/r", "epochs": 1}
    preflight.check_run(overrides, DistillConfig(), set(DistillConfig.keys()))
    assert warnings == []


def test_a_key_given_twice_is_warned_about(capsys):
    pairs = cli.parse_pairs(["epochs=1", "epochs=3", "imgsz=64"], {"epochs", "imgsz"})
    assert pairs == {"epochs": 3, "imgsz": 64}
    assert "epochs given twice (1, then 3): using 3" in capsys.readouterr().err


def test_resume_drops_the_rows_of_epochs_its_checkpoint_did_not_keep(tmp_path):
    """Interrupted after epoch 2's row was written but before its checkpoint: the resume trains epoch 2 again,
    so its first row goes (ultralytics would append a second one)."""
    csv_file = tmp_path / "results.csv"
    csv_file.write_text("epoch,time,train/box_loss\n1,10.5,3.2\n2,21.0,2.9\n")
    preflight.drop_rows_after(csv_file, 1)
    assert csv_file.read_text() == "epoch,time,train/box_loss\n1,10.5,3.2\n"
    preflight.drop_rows_after(csv_file, 1)  # nothing more to drop: unchanged
    assert csv_file.read_text() == "epoch,time,train/box_loss\n1,10.5,3.2\n"
    preflight.drop_rows_after(tmp_path / "missing.csv", 1)  # no file: nothing to do
