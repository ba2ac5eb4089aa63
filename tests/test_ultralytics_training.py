"""Real ultralytics training runs on a tiny dataset the tests write themselves (models from yaml, CPU)."""

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
from prune_helpers import prune_half
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, load_checkpoint
from ultralytics.utils.torch_utils import get_flops

from kdloss.adapters.ultralytics import DistillationTrainer, distill
from kdloss.adapters.ultralytics import trainer as trainer_module
from kdloss.adapters.ultralytics.data import make_shapes_dataset

pytestmark = pytest.mark.slow
COMMON = {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False, "amp": False, "device": "cpu",
          "exist_ok": True, "verbose": False, "seed": 0}
EXPECTED_COLUMNS = {"cwd": ["kdcwd_loss"], "mgd": ["kdmgd_loss"], "mimic": ["kdmim_loss"], "pkd": ["kdpkd_loss"],
                    "sl2": ["kdsl2_loss"],
                    "none": [], "bckd": ["kdcls_loss", "kdbox_loss"], "l1": ["kdl1_loss"], "l2": ["kdl2_loss"],
                    "bckd+ld": ["kdcls_loss", "kdbox_loss", "kdld_loss"]}


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), train=32, val=8, imgsz=64)


@pytest.fixture(scope="session")
def teacher(data, tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("teacher")
    YOLO("yolov8s.yaml").train(data=str(data), project=str(project), name="t", **COMMON)
    return project / "t" / "weights" / "best.pt"


def results(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize("logit_loss", ["bckd", "l1", "l2", "none", "bckd+ld"])
@pytest.mark.parametrize("feature_loss", ["cwd", "mgd", "mimic", "pkd", "sl2", "none"])
def test_every_combination_trains_and_logs_its_columns(feature_loss, logit_loss, data, teacher, tmp_path):
    if feature_loss == logit_loss == "none":
        with pytest.raises(ValueError, match="nothing to distill"):
            distill("yolov8n.yaml", teacher, data, feature_loss="none", logit_loss="none", project=str(tmp_path),
                    name="r", **COMMON)
        return
    distill("yolov8n.yaml", teacher, data, feature_loss=feature_loss, logit_loss=logit_loss, project=str(tmp_path),
            name="r", **COMMON)
    (row,) = results(tmp_path / "r")
    columns = EXPECTED_COLUMNS[feature_loss] + EXPECTED_COLUMNS[logit_loss]
    for column in columns:
        value = float(row[f"train/{column}"])
        assert math.isfinite(value) and value > 0, (column, value)
        assert float(row[f"val/{column}"]) == 0.0  # validation computes no distillation
    for column in ("train/box_loss", "train/cls_loss", "train/dfl_loss"):
        assert column in row


def test_teacher_frozen_ema_student_only_and_parts_optimised(data, teacher, tmp_path):
    seen = {"teacher_training": set(), "teacher_grads": set()}

    def on_train_start(trainer):
        model = trainer.model
        optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        seen["projector_optimised"] = all(id(p) in optimised for p in model.projector.parameters())
        seen["projector_params"] = sum(p.numel() for p in model.projector.parameters())
        seen["teacher_trainable"] = any(p.requires_grad for p in model.teacher_model.parameters())

    def on_train_batch_end(trainer):
        seen["teacher_training"].add(trainer.model.teacher_model.training)
        seen["teacher_grads"].add(any(p.grad is not None for p in trainer.model.teacher_model.parameters()))

    def on_train_end(trainer):
        seen["teacher_state"] = {k: v.clone() for k, v in trainer.model.teacher_model.state_dict().items()}
        seen["ema_teacher"] = trainer.ema.ema.teacher_model

    student = YOLO("yolov8n.yaml")
    for event, fn in [("on_train_start", on_train_start), ("on_train_batch_end", on_train_batch_end),
                      ("on_train_end", on_train_end)]:
        student.add_callback(event, fn)
    student.train(trainer=DistillationTrainer, data=str(data), teacher=str(teacher), feature_loss="mgd",
                  project=str(tmp_path), name="r", **{**COMMON, "epochs": 2})
    assert seen["projector_optimised"] and seen["projector_params"] > 0 and not seen["teacher_trainable"]
    assert seen["teacher_training"] == {False} and seen["teacher_grads"] == {False}
    fresh = load_checkpoint(teacher)[0].state_dict()
    assert fresh.keys() == seen["teacher_state"].keys()
    for key, value in fresh.items():  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(value, seen["teacher_state"][key].to(value.dtype)), key
    assert seen["ema_teacher"] is None


def test_crosskd_trains_teacher_bit_identical_align_convs_optimised_and_saved(data, teacher, tmp_path):
    seen = {}

    def on_train_start(trainer):
        optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        align = trainer.model.projector.losses["crosskd"].align
        seen["align_optimised"] = all(id(p) in optimised for p in align.parameters())
        seen["align_start"] = {k: v.clone() for k, v in align.state_dict().items()}

    def on_model_save(trainer):  # the training checkpoint (before ultralytics strips it to the student)
        seen["saved_align"] = load_checkpoint(trainer.last)[0].projector.losses["crosskd"].align.state_dict()

    def on_train_end(trainer):
        seen["teacher_state"] = {k: v.clone() for k, v in trainer.model.teacher_model.state_dict().items()}

    student = YOLO("yolov8n.yaml")
    for event, fn in [("on_train_start", on_train_start), ("on_model_save", on_model_save),
                      ("on_train_end", on_train_end)]:
        student.add_callback(event, fn)
    student.train(trainer=DistillationTrainer, data=str(data), teacher=str(teacher), feature_loss="none",
                  logit_loss="crosskd", project=str(tmp_path), name="r", **COMMON)
    (row,) = results(tmp_path / "r")
    for column in ("kdxcl_loss", "kdxbx_loss"):
        assert math.isfinite(float(row[f"train/{column}"])) and float(row[f"train/{column}"]) > 0, column
    assert seen["align_optimised"] and seen["align_start"]
    for key, value in load_checkpoint(teacher)[0].state_dict().items():
        assert torch.equal(value, seen["teacher_state"][key].to(value.dtype)), key
    trained = seen["saved_align"]
    assert trained.keys() == seen["align_start"].keys()
    assert any(not torch.equal(trained[k].float(), v) for k, v in seen["align_start"].items())


def test_saved_weights_load_predict_and_val_without_kdloss(data, teacher, tmp_path):
    distill("yolov8n.yaml", teacher, data, project=str(tmp_path), name="r", **COMMON)
    weights = tmp_path / "r" / "weights"
    image = next((Path(data).parent / "images" / "val").glob("*.png"))
    code = BLOCK_KDLOSS + textwrap.dedent(f"""
        from ultralytics import YOLO
        for name in ("best.pt", "last.pt"):
            model = YOLO({str(weights)!r} + "/" + name)
            assert type(model.model).__name__ == "DetectionModel", type(model.model)
            model.predict({str(image)!r}, imgsz=64, verbose=False)
        metrics = model.val(data={str(data)!r}, imgsz=64, batch=8, plots=False, device="cpu", workers=0,
                            verbose=False)
        print("OK", metrics.box.map)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def save_pruned_student(path: Path, nc: int) -> DetectionModel:
    model = prune_half(DetectionModel("yolov8n.yaml", nc=nc, verbose=False))
    model.names = {i: str(i) for i in range(nc)}
    torch.save({"model": model, "train_args": {"imgsz": 64}}, path)
    return model


def test_pruned_student_keeps_its_channels_through_distillation_and_resume(data, teacher, tmp_path, monkeypatch):
    pruned_path = tmp_path / "pruned.pt"
    pruned = save_pruned_student(pruned_path, nc=6)
    pruned_params = sum(p.numel() for p in pruned.parameters())
    full_flops = get_flops(DetectionModel("yolov8n.yaml", nc=6, verbose=False), 64)

    class Interrupt(Exception):
        pass

    def stop_after_first_save(trainer):
        raise Interrupt

    student = YOLO(str(pruned_path))
    student.add_callback("on_model_save", stop_after_first_save)
    with pytest.raises(Interrupt):
        student.train(trainer=DistillationTrainer, data=str(data), teacher=str(teacher), feature_loss="cwd",
                      schedule="linear", project=str(tmp_path), name="r", **{**COMMON, "epochs": 2})
    last = tmp_path / "r" / "weights" / "last.pt"
    saved = load_checkpoint(last)[0]
    saved_projector = {k: v.clone() for k, v in saved.projector.state_dict().items()}
    assert len(results(tmp_path / "r")) == 1

    resumed = {}

    def on_train_start(trainer):
        resumed["projector"] = {k: v.clone() for k, v in trainer.model.projector.state_dict().items()}
        resumed["student_params"] = sum(p.numel() for p in trainer.model.student_model.parameters())
        resumed["config"] = trainer.distill_config

    def on_train_batch_end(trainer):
        resumed.setdefault("progress", trainer.model.progress)

    checkpoint = torch.load(last, weights_only=False)
    del checkpoint["train_args"]["bckd_box_weight"]  # as in a checkpoint written before the key existed
    torch.save(checkpoint, last)
    warnings = []
    monkeypatch.setattr(trainer_module.LOGGER, "warning", lambda message, *args, **kwargs: warnings.append(message))
    model = YOLO(str(last))
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    model.train(trainer=DistillationTrainer, resume=True, schedule="cosine", bckd_box_weight=0)
    assert len(results(tmp_path / "r")) == 2
    assert resumed["student_params"] == pruned_params  # trained as loaded, not rebuilt from yolov8n.yaml
    # the checkpoint's settings, its key's default where it predates the key, each change named in a warning
    assert resumed["config"].schedule == "linear" and resumed["config"].bckd_box_weight == 4.0
    assert "resume keeps the checkpoint's ['schedule', 'bckd_box_weight']" in " ".join(map(str, warnings))
    for key, value in saved_projector.items():  # the trained align convs come back
        torch.testing.assert_close(resumed["projector"][key], value.float())
    assert resumed["progress"] == pytest.approx(0.5)  # epoch 2 of 2, first batch: the schedule continues
    best = load_checkpoint(tmp_path / "r" / "weights" / "best.pt")[0]
    assert sum(p.numel() for p in best.parameters()) == pruned_params
    assert get_flops(best, 64) < 0.6 * full_flops


def test_pruned_student_on_other_classes_is_an_error_not_a_silent_rebuild(data, teacher, tmp_path):
    save_pruned_student(tmp_path / "pruned3.pt", nc=3)
    with pytest.raises(ValueError, match="predicts 3 classes, the data 6, and its layers no longer match its yaml"):
        distill(tmp_path / "pruned3.pt", teacher, data, project=str(tmp_path), name="r", **COMMON)


def test_class_mismatch_is_a_clear_error(data, tmp_path):
    teacher = tmp_path / "teacher3.pt"
    torch.save({"model": DetectionModel("yolov8s.yaml", nc=3, verbose=False), "train_args": {}}, teacher)
    with pytest.raises(ValueError, match="teacher predicts 3 classes but the student 6"):
        distill("yolov8n.yaml", teacher, data, project=str(tmp_path), name="r", **COMMON)


@pytest.mark.parametrize("family", ["yolo11", "yolo26"])
def test_other_detect_head_families(family, data, tmp_path):
    teacher = tmp_path / "teacher.pt"
    torch.save({"model": DetectionModel(f"{family}s.yaml", nc=6, verbose=False), "train_args": {}}, teacher)
    one2one = {"one2one": True} if family == "yolo26" else {}  # and the end-to-end head's one-to-one branch
    distill(f"{family}n.yaml", teacher, data, feature_loss="cwd", project=str(tmp_path), name="r", **one2one,
            **COMMON)
    (row,) = results(tmp_path / "r")
    columns = ("kdcwd_loss", "kdcls_loss", "kdbox_loss", *(("kdocl_loss", "kdobx_loss") if one2one else ()))
    assert all(math.isfinite(float(row[f"train/{c}"])) and float(row[f"train/{c}"]) > 0 for c in columns)


def test_cli_end_to_end(data, teacher, tmp_path):
    kdloss = Path(sys.executable).parent / "kdloss"
    args = [str(kdloss), "distill", "student=yolov8n.yaml", f"teacher={teacher}", f"data={data}",
            "feature_loss=mimic", "logit_loss=l2", "feature_layers=15,18,21", f"project={tmp_path}", "name=cli",
            *(f"{k}={v}" for k, v in COMMON.items())]
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = results(tmp_path / "cli")
    assert float(row["train/kdmim_loss"]) > 0 and float(row["train/kdl2_loss"]) > 0

    bad = subprocess.run([str(kdloss), "distill", "student=yolov8n.yaml", "feature_los=cwd"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "'feature_los' is not a valid kdloss distill key. Did you mean feature_loss" \
        in bad.stderr
    assert subprocess.run([str(kdloss), "--help"], capture_output=True, text=True).stdout.startswith("usage: kdloss")


def test_results_png_plots_distillation_columns(data, teacher, tmp_path):
    """ultralytics plots every results.csv column whose name holds 'loss': ours are named *_loss."""
    distill("yolov8n.yaml", teacher, data, feature_loss="cwd", project=str(tmp_path), name="r",
            **{**COMMON, "plots": True})
    (row,) = results(tmp_path / "r")
    assert {"train/kdcwd_loss", "train/kdcls_loss", "train/kdbox_loss"} <= set(row)
    assert (tmp_path / "r" / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_kdloss_prune_then_distill_keeps_the_pruned_shapes(data, teacher, tmp_path):
    """The whole flow: kdloss prune a student, fine-tune it with distillation, the result stays pruned."""
    from kdloss.adapters.ultralytics.prune import prune

    full = tmp_path / "v8n.pt"
    model = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    torch.save({"model": model, "train_args": {"imgsz": 64}}, full)
    report = prune(full, ratio=0.4, output=tmp_path / "pruned.pt", imgsz=64)
    distill(report.output, teacher, data, project=str(tmp_path), name="ft", **COMMON)
    tuned = YOLO(str(tmp_path / "ft" / "weights" / "best.pt")).model
    assert sum(p.numel() for p in tuned.parameters()) == report.params_after
    assert get_flops(tuned, 640) == pytest.approx(report.gflops_after, rel=1e-3)


def test_experiment_fine_tunes_a_pruned_student_as_loaded_for_every_method(data, teacher, tmp_path):
    """`none` (plain fine-tuning) and `builtin` (ultralytics' distill_model) keep the pruned channels too:
    ultralytics' own trainer would rebuild the full model from the yaml."""
    from kdloss.adapters.ultralytics.experiment import run_experiment

    pruned_path = tmp_path / "pruned.pt"
    pruned_params = sum(p.numel() for p in save_pruned_student(pruned_path, nc=6).parameters())
    settings = {k: v for k, v in COMMON.items() if k not in {"exist_ok", "seed"}}
    results = run_experiment(data, str(pruned_path), str(teacher), ["none", "builtin", "bckd"], [0],
                             tmp_path / "exp", **settings)
    assert [r.method for r in results] == ["none", "builtin", "bckd"]
    assert all(r.params == pruned_params for r in results), [(r.method, r.params) for r in results]


def record_steps_and_log(monkeypatch) -> tuple[list[tuple[int, int | None]], list[str]]:
    """(images in each training step's batch and how many of them are labelled, kdloss's log lines), filled
    as the training runs."""
    from kdloss.adapters.ultralytics.model import KDDistillationModel

    seen, messages = [], []
    original = KDDistillationModel.loss

    def recorded(self, batch, preds=None):
        if self.training:
            seen.append((batch["img"].shape[0], batch.get("labeled")))
        return original(self, batch, preds)

    monkeypatch.setattr(KDDistillationModel, "loss", recorded)
    monkeypatch.setattr(trainer_module.LOGGER, "info", lambda message, *a, **k: messages.append(str(message)))
    return seen, messages


def test_unlabeled_images_join_every_distilled_step(data, teacher, tmp_path, monkeypatch):
    """unlabeled=folder: every training step carries unlabeled_batch of those images after the labelled batch
    (the detection loss sees the labelled ones only: tests/test_unlabeled.py); validation never does."""
    import shutil

    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for image in sorted((data.parent / "images" / "val").glob("*.png")):
        shutil.copy(image, folder)  # no labels beside them
    seen, messages = record_steps_and_log(monkeypatch)
    distill("yolov8n.yaml", teacher, data, unlabeled=str(folder), unlabeled_batch=4, project=str(tmp_path),
            name="r", **COMMON)
    assert seen == [(16 + 4, 16), (16 + 4, 16)]  # 32 labelled images, batch 16; 4 unlabelled a step
    assert any(f"kdloss: 8 unlabelled images from {folder.resolve()}, 4 a step" in m for m in messages)
    (row,) = results(tmp_path / "r")
    assert float(row["train/kdcls_loss"]) > 0 and float(row["val/kdcls_loss"]) == 0.0


def test_unlabeled_train_reads_the_training_images_again(data, teacher, tmp_path, monkeypatch):
    """unlabeled=train: the data's own training images, read a second time without labels, join each step."""
    seen, messages = record_steps_and_log(monkeypatch)
    distill("yolov8n.yaml", teacher, data, unlabeled="train", unlabeled_batch=4, project=str(tmp_path), name="t",
            **COMMON)
    assert seen == [(16 + 4, 16), (16 + 4, 16)]
    train_images = (data.parent / "images" / "train").resolve()
    assert any(m.startswith(f"kdloss: 32 unlabelled images from {train_images}, 4 a step") for m in messages)
