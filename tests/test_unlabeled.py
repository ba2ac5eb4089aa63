"""Unlabelled images (``unlabeled=``): the detection loss sees the labelled images only, the distillation all."""

from __future__ import annotations

import pytest
import torch
from test_ultralytics_units import student, tiny_batch
from torch import nn

from kdloss import BCKD
from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel
from kdloss.adapters.ultralytics.unlabeled import (
    CycledBatches,
    append_unlabeled,
    check_unlabeled,
    leading,
    unlabeled_images,
)


def calibrated(model: nn.Module) -> nn.Module:
    """``model`` with its BatchNorm statistics read from one batch of random images and then frozen, so that
    each image's predictions depend on the image (an untrained net on init statistics gives about the same
    output for every image) and not on the other images of its batch (the comparisons below put the same
    images in batches of different sizes)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(2)))
    for m in norms:
        m.eval()
    return model


def pair(feature_loss: str = "none") -> KDDistillationModel:
    model = KDDistillationModel(calibrated(student("yolov8s.yaml")), calibrated(student()),
                                DistillConfig(feature_loss=feature_loss))
    model.train()
    calibrated(model.student_model)
    return model


def test_the_detection_loss_is_the_labelled_images_alone():
    model = pair()
    g = torch.Generator().manual_seed(0)
    batch = tiny_batch(g)
    extra = torch.rand(3, 3, 64, 64, generator=g)
    alone = model.student_model.loss(batch, model.student_model(batch["img"]))[0]
    loss, _ = model.loss(append_unlabeled(dict(batch), {"img": extra}))
    torch.testing.assert_close(loss[:3], alone, rtol=1e-5, atol=1e-6)
    # what the unlabelled images would do as plain background images: every anchor a negative
    everything = torch.cat([batch["img"], extra])
    background = model.student_model.loss(batch, model.student_model(everything))[0]
    assert not torch.allclose(background[:3] / 5, alone / 2, rtol=1e-3)


def test_the_distillation_sees_every_image_with_its_normaliser_scaled(monkeypatch):
    model = pair()
    g = torch.Generator().manual_seed(1)
    batch = tiny_batch(g)
    seen = []
    original = BCKD.parts

    def spy(self, s, t, avg_factor=None):
        seen.append((s.cls.shape[0], avg_factor.item()))
        return original(self, s, t, avg_factor)

    monkeypatch.setattr(BCKD, "parts", spy)
    _, labelled_only = model.loss(dict(batch))
    first = model.loss(append_unlabeled(dict(batch), {"img": torch.rand(2, 3, 64, 64, generator=g)}))
    second = model.loss(append_unlabeled(dict(batch), {"img": torch.rand(2, 3, 64, 64, generator=g)}))
    (n0, factor0), (n1, factor1), (n2, factor2) = seen
    assert (n0, n1, n2) == (2, 4, 4)
    assert factor1 == pytest.approx(2 * factor0) and factor2 == pytest.approx(2 * factor0)  # 4 images / 2 labelled
    torch.testing.assert_close(first[0][:3], second[0][:3])  # the detection part ignores the unlabelled images
    assert first[1]["kdcls_loss"] != pytest.approx(second[1]["kdcls_loss"].item(), rel=1e-4)  # the distillation not
    assert first[1]["kdcls_loss"] != pytest.approx(labelled_only["kdcls_loss"].item(), rel=1e-4)
    first[0].sum().backward()


def test_feature_losses_see_every_image():
    model = pair("cwd")
    batch = append_unlabeled(tiny_batch(), {"img": torch.rand(2, 3, 64, 64)})
    sizes = []
    model.projector.losses["cwd"].register_forward_pre_hook(lambda _m, args: sizes.append(args[0][0].shape[0]))
    loss, items = model.loss(batch)
    assert sizes == [4] and torch.isfinite(loss).all() and items["kdcwd_loss"] > 0


def test_without_distillation_only_the_labelled_images_run():
    model = pair()
    model.distilling = False
    batch = tiny_batch()
    alone = model.student_model.loss(batch, model.student_model(batch["img"]))[0]
    loss, _ = model.loss(append_unlabeled(dict(batch), {"img": torch.rand(2, 3, 64, 64)}))
    torch.testing.assert_close(loss[:3], alone, rtol=1e-5, atol=1e-6)
    assert loss[3] == 0


def test_append_unlabeled_resizes_to_the_batch_and_counts_the_labelled():
    batch = append_unlabeled({"img": torch.rand(2, 3, 64, 96)}, {"img": torch.rand(5, 3, 32, 32)})
    assert batch["img"].shape == (7, 3, 64, 96) and batch["labeled"] == 2


def test_leading_cuts_every_tensor_with_the_batch_dimension():
    preds = {"one2many": {"boxes": torch.zeros(5, 64, 10), "feats": [torch.zeros(5, 8, 4, 4)]},
             "proto": (torch.zeros(5, 32, 8, 8), torch.zeros(3)), "scale": torch.tensor(2.0)}
    cut = leading(preds, 2, 5)
    assert cut["one2many"]["boxes"].shape == (2, 64, 10) and cut["one2many"]["feats"][0].shape == (2, 8, 4, 4)
    assert cut["proto"][0].shape == (2, 32, 8, 8) and cut["proto"][1].shape == (3,) and cut["scale"].dim() == 0


def test_cycled_batches_start_a_new_pass_when_one_ends():
    batches = CycledBatches([{"i": 0}, {"i": 1}])
    assert [next(batches)["i"] for _ in range(5)] == [0, 1, 0, 1, 0]
    batches.restart()
    assert next(batches)["i"] == 0


def test_unlabeled_path_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unlabeled=.*nowhere: no such folder or file"):
        check_unlabeled(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="the folder holds no images"):
        check_unlabeled(str(tmp_path / "empty"))
    (tmp_path / "list.csv").write_text("a.jpg\n")
    with pytest.raises(ValueError, match=r"a folder of images or a \.txt list"):
        check_unlabeled(str(tmp_path / "list.csv"))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.JPG").write_bytes(b"")
    check_unlabeled(str(tmp_path / "images"))  # an image by its suffix: ultralytics checks the file itself


def test_config_keeps_the_path_as_given_and_checks_the_batch():
    config = DistillConfig.from_dict({"unlabeled": "/Data/Unlabelled Images", "unlabeled_batch": "8"})
    assert config.unlabeled == "/Data/Unlabelled Images" and config.unlabeled_batch == 8
    assert DistillConfig.from_dict({"unlabeled": "none"}).unlabeled is None
    with pytest.raises(ValueError, match="unlabeled_batch must be >= 0"):
        DistillConfig.from_dict({"unlabeled": "/x", "unlabeled_batch": -1})
    with pytest.raises(ValueError, match="unlabeled_batch=4 needs unlabeled="):
        DistillConfig.from_dict({"unlabeled_batch": 4})


def test_unlabeled_train_names_the_datas_training_images(tmp_path):
    data = {"train": str(tmp_path / "images" / "train"), "val": str(tmp_path / "images" / "val")}
    assert unlabeled_images("train", data) == data["train"]
    assert unlabeled_images("./train", data) == "./train"  # a folder of that name, given as a path
    assert unlabeled_images("/x/extra", data) == "/x/extra"
    listed = {"train": ["/a/images", "/b/images"]}
    assert unlabeled_images("train", listed) == listed["train"]
    check_unlabeled("train")  # ultralytics checks the data's own split
    assert DistillConfig.from_dict({"unlabeled": "train"}).unlabeled == "train"
