"""Segment, pose and OBB students: ultralytics' own trainer for the task, its columns and metrics, plus kdloss's;
on tiny datasets the tests write (polygons, keypoints, rotated-box corners)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import BLOCK_KDLOSS
from ultralytics import YOLO
from ultralytics.nn.tasks import load_checkpoint

from kdloss.adapters.ultralytics import distill, distillation_trainer
from kdloss.adapters.ultralytics.data import KEYPOINTS, label_line, make_shapes_dataset
from kdloss.adapters.ultralytics.experiment import evaluate

COMMON = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False, "amp": False, "device": "cpu",
          "exist_ok": True, "verbose": False, "seed": 0}
# each task's own train columns and metric columns in results.csv
TASK_COLUMNS = {"segment": ("train/seg_loss", "metrics/mAP50-95(M)"),
                "pose": ("train/pose_loss", "metrics/mAP50-95(P)"),
                "obb": ("train/angle_loss", "metrics/mAP50-95(B)")}


def test_task_labels_follow_the_yolo_formats():
    label = (3, 0.5, 0.4, 0.2, 0.2)  # a cross at the centre, radius 0.1
    seg = [float(v) for v in label_line(label, "segment", 64).split()[1:]]
    assert len(seg) == 24 and all(0 <= v <= 1 for v in seg)  # the cross's 12 vertices
    pose = [float(v) for v in label_line(label, "pose", 64).split()[1:]]
    assert len(pose) == 4 + 3 * KEYPOINTS and pose[4:7] == pytest.approx([0.5, 0.3, 2])  # top extreme, visible
    obb = [float(v) for v in label_line(label, "obb", 64).split()[1:]]
    assert obb == pytest.approx([0.4, 0.3, 0.6, 0.3, 0.6, 0.5, 0.4, 0.5])
    with pytest.raises(ValueError, match="task='depth' is not one of"):
        make_shapes_dataset("unused", task="depth")


def test_trainer_per_task():
    for task, name in (("detect", "DistillationTrainer"), ("segment", "SegmentationDistillationTrainer"),
                       ("pose", "PoseDistillationTrainer"), ("obb", "OBBDistillationTrainer")):
        assert distillation_trainer(task).__name__ == name
    with pytest.raises(ValueError, match="kdloss distills detect, segment, pose and obb models; this student's task "
                                         "is 'classify'"):
        distillation_trainer("classify")


@pytest.mark.slow
@pytest.mark.parametrize(("task", "suffix", "logit_loss"), [("segment", "-seg", "bckd+ld"), ("pose", "-pose", "bckd"),
                                                             ("obb", "-obb", "bckd+ld")])
def test_task_student_trains_with_its_own_columns_and_a_frozen_teacher(task, suffix, logit_loss, tmp_path):
    data = make_shapes_dataset(tmp_path / "data", train=16, val=8, imgsz=64, task=task)
    YOLO(f"yolov8s{suffix}.yaml").train(data=str(data), project=str(tmp_path), name="t", **COMMON)
    teacher = tmp_path / "t" / "weights" / "best.pt"
    seen = {}

    def on_train_end(trainer):
        seen["teacher_state"] = {k: v.clone() for k, v in trainer.model.teacher_model.state_dict().items()}
        seen["trainer"] = type(trainer).__name__

    student = YOLO(f"yolov8n{suffix}.yaml")
    student.add_callback("on_train_end", on_train_end)
    student.train(trainer=distillation_trainer(task), data=str(data), teacher=str(teacher), feature_loss="cwd",
                  logit_loss=logit_loss,
                  project=str(tmp_path), name="s", **COMMON)
    with open(tmp_path / "s" / "results.csv") as f:
        (row,) = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(f)]
    for column in ("train/kdcwd_loss", "train/kdcls_loss", "train/kdbox_loss"):
        assert math.isfinite(float(row[column])) and float(row[column]) > 0, column
    assert all(column in row for column in TASK_COLUMNS[task])  # the task's own losses and metrics
    assert seen["trainer"] == distillation_trainer(task).__name__
    for key, value in load_checkpoint(teacher)[0].state_dict().items():
        assert torch.equal(value, seen["teacher_state"][key].to(value.dtype)), key

    result = evaluate(tmp_path / "s" / "weights" / "best.pt", data, 64, "val", logit_loss, 0)  # kdloss experiment's
    assert result.task_metric == {"segment": "mask", "pose": "pose", "obb": None}[task]
    assert (result.task_map50_95 is None) == (task == "obb") and 0 <= result.map50_95 <= 1

    image = next((Path(data).parent / "images" / "val").glob("*.png"))
    code = BLOCK_KDLOSS + textwrap.dedent(f"""
        from ultralytics import YOLO
        model = YOLO({str(tmp_path / "s" / "weights" / "best.pt")!r})
        assert model.task == {task!r}, model.task
        assert type(model.model).__name__ != "KDDistillationModel"
        model.predict({str(image)!r}, imgsz=64, verbose=False)
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=os.environ.copy())
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_distill_picks_the_task_trainer_from_the_student(tmp_path):
    data = make_shapes_dataset(tmp_path / "data", train=8, val=4, imgsz=64, task="segment")
    YOLO("yolov8n-seg.yaml").train(data=str(data), project=str(tmp_path), name="t", **COMMON)
    distill("yolov8n-seg.yaml", tmp_path / "t" / "weights" / "best.pt", data, feature_loss="none",
            logit_loss="crosskd", project=str(tmp_path), name="s", **COMMON)
    with open(tmp_path / "s" / "results.csv") as f:
        header = [k.strip() for k in next(csv.reader(f))]
    assert {"train/seg_loss", "metrics/mAP50-95(M)", "train/kdxcl_loss", "train/kdxbx_loss"} <= set(header)


def test_rewriting_a_dataset_for_another_task_leaves_nothing_of_the_old_one(tmp_path):
    make_shapes_dataset(tmp_path, train=3, val=2, imgsz=32, task="segment")
    (tmp_path / "labels" / "train.cache").write_text("ultralytics' cache of the segment labels")
    yaml = make_shapes_dataset(tmp_path, train=2, val=2, imgsz=32, task="pose")
    assert sorted(p.name for p in (tmp_path / "images" / "train").iterdir()) == ["00000.png", "00001.png"]
    assert not (tmp_path / "labels" / "train.cache").exists()
    assert all(len(line.split()) == 5 + 3 * KEYPOINTS for p in (tmp_path / "labels" / "train").glob("*.txt")
               for line in p.read_text().splitlines() if line)
    assert "kpt_shape" in yaml.read_text()
    make_shapes_dataset(tmp_path, train=2, val=2, imgsz=32, task="detect")
    assert "kpt_shape" not in yaml.read_text() and len(list(tmp_path.glob(".complete-*"))) == 1


def test_a_loaded_model_is_trained_as_it_is_only_where_it_fits_the_data():
    from ultralytics.nn.tasks import DetectionModel, PoseModel

    from kdloss.adapters.ultralytics.trainer import as_loaded_trainer, fits_the_data

    pose = PoseModel("yolov8n-pose.yaml", nc=1, data_kpt_shape=(17, 3), verbose=False)
    assert fits_the_data(pose, {"nc": 1, "channels": 3, "kpt_shape": [17, 3]})
    assert not fits_the_data(pose, {"nc": 1, "channels": 3, "kpt_shape": [12, 3]})  # ultralytics rebuilds it
    detect = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    assert fits_the_data(detect, {"nc": 6, "channels": 3}) and not fits_the_data(detect, {"nc": 6, "channels": 1})
    assert not fits_the_data(detect, {"nc": 5, "channels": 3})
    assert [as_loaded_trainer(t).__name__ for t in ("detect", "segment", "pose", "obb")] == [
        "AsLoadedTrainer", "AsLoadedSegmentationTrainer", "AsLoadedPoseTrainer", "AsLoadedOBBTrainer"]
