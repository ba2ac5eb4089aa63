"""The log says what the default recipe is measured to do for the student's start (adapters/ultralytics/
recipe.py): a student loaded from weights is pointed to the evidence and to the comparison to run first."""

from __future__ import annotations

import pytest
from ultralytics import YOLO

from kdloss.adapters.ultralytics import DistillationTrainer
from kdloss.adapters.ultralytics import trainer as trainer_module
from kdloss.adapters.ultralytics.data import make_shapes_dataset
from kdloss.adapters.ultralytics.recipe import EVIDENCE, EVIDENCE_UNLABELED, loaded_from_weights, start_note

COMMON = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False, "amp": False, "device": "cpu",
          "exist_ok": True, "verbose": False}


@pytest.mark.parametrize(("model", "loaded"), [("yolov8n.pt", True), ("runs/r/weights/best.pt", True),
                                               ("yolov8n.yaml", False), ("cfg/yolo11n.yml", False)])
def test_which_students_are_loaded_from_weights(model, loaded):
    assert loaded_from_weights(model) is loaded


def test_the_notes_name_the_start_and_the_evidence():
    loaded = start_note("runs/r/weights/best.pt")
    assert "loaded from weights (best.pt)" in loaded and EVIDENCE in loaded and EVIDENCE_UNLABELED in loaded
    assert "methods=none,bckd,bckd:unlabeled=train" in loaded and "unlabeled=folder" in loaded
    given = start_note("runs/r/weights/best.pt", "/data/extra")
    assert "with unlabelled images (/data/extra)" in given and EVIDENCE_UNLABELED in given
    assert given.endswith("methods=none,bckd:unlabeled=/data/extra")
    assert "random weights" in start_note("yolov8n.yaml") and EVIDENCE not in start_note("yolov8n.yaml")
    assert start_note("yolov8n.yaml", "train") == start_note("yolov8n.yaml")


def test_the_evidence_named_exists():
    from pathlib import Path

    for evidence in (EVIDENCE, EVIDENCE_UNLABELED):
        assert (Path(__file__).resolve().parents[1] / evidence).is_file()


class Stop(Exception):
    pass


@pytest.mark.slow
def test_the_trainer_says_it_once_per_run(tmp_path, monkeypatch):
    data = make_shapes_dataset(tmp_path / "shapes", train=16, val=8, imgsz=64)
    YOLO("yolov8n.yaml").train(data=str(data), project=str(tmp_path), name="w", **COMMON)
    weights = tmp_path / "w" / "weights" / "last.pt"
    notes = []
    monkeypatch.setattr(trainer_module.LOGGER, "info", lambda message, *a, **k: notes.append(str(message)))

    def stop(trainer):
        raise Stop

    for student in (str(weights), "yolov8n.yaml"):
        model = YOLO(student)
        model.add_callback("on_train_start", stop)
        with pytest.raises(Stop):
            model.train(trainer=DistillationTrainer, data=str(data), teacher=str(weights), project=str(tmp_path),
                        name="r", **COMMON)
    said = [n for n in notes if n.startswith("kdloss: the student")]
    assert said == [start_note(str(weights)), start_note("yolov8n.yaml")]
