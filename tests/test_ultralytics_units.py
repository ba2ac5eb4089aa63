"""Adapter pieces without training: config parsing, head mapping, model construction errors, DDP args."""

from __future__ import annotations

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG_DICT
from ultralytics.utils.tal import make_anchors

from kdloss import BCKD, CWD, MGD, PKD, Mimic
from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel
from kdloss.adapters.ultralytics.criterion import build_criterion
from kdloss.adapters.ultralytics.heads import detect_head, detection_output
from kdloss.adapters.ultralytics.trainer import _update_progress


def student(yaml="yolov8n.yaml", nc=6, imgsz=64):
    model = DetectionModel(yaml, nc=nc, verbose=False)
    model.args = get_cfg(overrides={"imgsz": imgsz})
    return model


def tiny_batch(generator: torch.Generator | None = None) -> dict:
    """Two 64x64 images with one labelled box each, as ultralytics' loss takes a batch."""
    return {"img": torch.rand(2, 3, 64, 64, generator=generator), "batch_idx": torch.tensor([0.0, 1.0]),
            "cls": torch.tensor([[1.0], [2.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]])}


def test_config_parses_cli_strings():
    config = DistillConfig.from_dict({"feature_layers": "15,18,21", "tau": "2", "schedule": "Cosine"})
    assert config.feature_layers == [15, 18, 21] and config.tau == 2.0 and config.schedule == "cosine"
    assert DistillConfig.from_dict({"student_layers": (4, 6), "teacher_layers": "[4, 6]"}).layers() == ([4, 6], [4, 6])
    assert DistillConfig.from_dict({"feature_layers": "none"}).feature_layers is None


@pytest.mark.parametrize(("values", "message"), [
    ({"feature_loss": "kd"}, r"feature_loss='kd' is not one of \('cwd', 'mgd', 'mimic', 'pkd', 'sl2', 'none'\)"),
    ({"logit_loss": "kl"}, "logit_loss='kl' is not one of"),
    ({"logit_loss": "bckd+bckd"}, "logit_loss='bckd\\+bckd' is not one of"),
    ({"logit_loss": "none+ld"}, "logit_loss='none\\+ld' is not one of"),
    ({"ld_temperature": 0}, "ld_temperature must be > 0"),
    ({"bckd_box_weight": -1}, "bckd_box_weight must be >= 0, got -1"),
    ({"bckd_cls_weight": "-0.5"}, "bckd_cls_weight must be >= 0, got -0.5"),
    ({"schedule": "step"}, "schedule='step' is not one of"),
    ({"feature_layers": [1], "student_layers": [1], "teacher_layers": [1]}, "not both"),
    ({"student_layers": [1]}, "go together"),
    ({"feature_layers": "a,b"}, "expected layer indices"),
    ({"tau": "hot"}, "tau='hot': expected a number"),
    ({"tau": 0}, "tau must be > 0"),
    ({"lambda_mgd": 1.0}, r"lambda_mgd must be in \[0, 1\)"),
    ({"one2one": "maybe"}, "one2one='maybe': expected True or False"),
    ({"one2one": True, "logit_loss": "crosskd"}, "one2one=True distills the one-to-one branch with bckd"),
    ({"one2one": True, "logit_loss": "none"}, "one2one=True distills the one-to-one branch with bckd"),
])
def test_config_rejects_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        DistillConfig.from_dict(values)


def test_config_pickled_before_a_key_existed_gets_its_default():
    """The model reads config.fold_teacher / config.one2one directly: a config pickled before those keys
    existed reads their defaults (the dataclass keeps each default on the class), as a resume would."""
    import pickle

    class Older(DistillConfig):  # pickles without the keys added later
        def __reduce__(self):
            state = {k: v for k, v in self.__dict__.items() if k not in ("fold_teacher", "one2one")}
            return (DistillConfig.__new__, (DistillConfig,), state)

    config = pickle.loads(pickle.dumps(Older(logit_loss="l2", tau=3.0)))
    assert (config.logit_loss, config.tau, config.fold_teacher, config.one2one) == ("l2", 3.0, True, False)


def test_pop_from_leaves_ultralytics_keys():
    overrides = {"epochs": 3, "feature_loss": "mgd", "tau": 2.0}
    config = DistillConfig.pop_from(overrides)
    assert overrides == {"epochs": 3} and config.feature_loss == "mgd" and config.tau == 2.0


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"])
def test_detection_output_matches_head_layout(yaml):
    model = student(yaml)
    head = detect_head(model)
    model.train()
    preds = model(torch.randn(2, 3, 64, 64))
    out = detection_output(preds, head)
    raw = preds["one2many"] if "one2many" in preds else preds  # end-to-end heads: the one-to-many branch
    a = raw["scores"].shape[-1]
    assert out.cls.shape == (2, a, 6) and out.box.shape == (2, a, 4, head.reg_max)
    torch.testing.assert_close(out.cls, raw["scores"].transpose(1, 2))
    # box channels are side-major (4 × reg_max), as ultralytics' DFL reads them
    torch.testing.assert_close(out.box[:, 5, 2, :], raw["boxes"][:, 2 * head.reg_max:3 * head.reg_max, 5])
    anchors, strides = make_anchors(raw["feats"], head.stride, 0.5)
    torch.testing.assert_close(out.anchors, anchors)
    torch.testing.assert_close(out.strides, strides[:, 0])


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo26n.yaml"])
def test_detection_output_of_eval_mode_teacher_matches_training(yaml):
    """The frozen teacher runs in eval mode: its head returns (decoded, raw dict), mapped like training's dict."""
    model, x = student(yaml), torch.randn(2, 3, 64, 64)
    head = detect_head(model)
    model.eval()
    preds = model(x)
    assert isinstance(preds, tuple)
    eval_out = detection_output(preds, head)
    head.training = True  # the head alone: its layers keep eval-mode BatchNorm, so the numbers match
    train_out = detection_output(model(x), head)
    torch.testing.assert_close(eval_out.cls, train_out.cls)
    torch.testing.assert_close(eval_out.box, train_out.box)
    torch.testing.assert_close(eval_out.anchors, train_out.anchors)


def test_detection_output_rejects_other_formats():
    model = student()
    head = detect_head(model)
    model.train()
    preds = model(torch.randn(2, 3, 64, 64))
    with pytest.raises(TypeError, match=r"Detect output list is not ultralytics 8.4's dict"):
        detection_output(list(preds["feats"]), head)  # pre-8.4 heads returned a list of per-level maps
    with pytest.raises(TypeError, match=r"Detect output dict with keys \['boxes', 'feats'\] is not"):
        detection_output({"boxes": preds["boxes"], "feats": preds["feats"]}, head)
    head.export = True
    model.eval()
    with pytest.raises(TypeError, match=r"Detect output Tensor is not .* export-mode heads cannot be distilled"):
        detection_output(model(torch.randn(2, 3, 64, 64)), head)


def test_build_criterion_picks_losses_weights_and_align():
    config = DistillConfig.from_dict({"feature_loss": "cwd", "logit_loss": "bckd", "feature_weight": 2.0,
                                      "logit_weight": 0.5, "schedule": "linear", "schedule_final_ratio": 0.0})
    criterion = build_criterion(config, [64, 128, 256], [128, 256, 512])
    assert isinstance(criterion.losses["cwd"], CWD) and isinstance(criterion.losses["bckd"], BCKD)
    assert len(criterion.losses["cwd"].align.convs) == 3
    assert criterion.factors(0.5) == {"cwd": 1.0, "bckd": 0.25}
    assert isinstance(build_criterion(DistillConfig(feature_loss="mgd", logit_loss="none"), [8], [16]).losses["mgd"],
                      MGD)
    assert isinstance(build_criterion(DistillConfig(feature_loss="mimic"), [8], [8]).losses["mimic"], Mimic)
    pkd = build_criterion(DistillConfig(feature_loss="pkd", logit_loss="none"), [8, 16], [16, 16]).losses["pkd"]
    assert isinstance(pkd, PKD) and pkd.align.channels == [(8, 16), (16, 16)]
    with pytest.raises(ValueError, match="nothing to distill"):
        build_criterion(DistillConfig(feature_loss="none", logit_loss="none"), [8], [8])


def test_default_recipe_is_bckd_alone_at_weight_half():
    """The sweep in docs/results.md (two datasets, 3 paired seeds) found no gain from CWD on top of BCKD; BCKD's
    weight 0.5 was above 1 with the 200-epoch teachers and 60-epoch students (docs/results.md, "Choosing BCKD's
    weight")."""
    config = DistillConfig()
    assert (config.feature_loss, config.logit_loss, config.logit_weight) == ("none", "bckd", None)
    model = KDDistillationModel(student("yolov8s.yaml"), student(), config)
    assert list(model.projector.losses) == ["bckd"] and not list(model.projector.parameters())
    assert model.projector.factors(0.0) == {"bckd": 0.5}


def test_logit_weight_defaults_per_loss_and_a_given_one_weighs_every_logit_loss():
    config = DistillConfig.from_dict({"logit_loss": "bckd+ld+l2"})
    assert build_criterion(config, [8], [8]).factors(0.0) == {"bckd": 0.5, "ld": 1.0, "l2": 1.0}
    assert config.logit_loss_weight("o2o_bckd") == 0.5 and config.logit_loss_weight("crosskd") == 1.0
    given = DistillConfig.from_dict({"logit_loss": "bckd+ld", "logit_weight": "2"})
    assert build_criterion(given, [8], [8]).factors(0.0) == {"bckd": 2.0, "ld": 2.0}
    assert DistillConfig.from_dict({"logit_weight": "1"}).logit_loss_weight("bckd") == 1.0
    assert DistillConfig.from_dict({"logit_weight": "none"}).logit_loss_weight("bckd") == 0.5
    with pytest.raises(ValueError, match="logit_weight must be >= 0"):
        DistillConfig.from_dict({"logit_weight": "-1"})


def test_model_uses_detect_inputs_by_default_and_aligns_channels():
    model = KDDistillationModel(student("yolov8s.yaml"), student(), DistillConfig(feature_loss="cwd"))
    assert model.feats_idx == [15, 18, 21, 22] and model.teacher_feats_idx == [15, 18, 21, 22]
    assert model.projector.losses["cwd"].align.channels == [(64, 128), (128, 256), (256, 512)]
    assert not model.teacher_model.training and not any(p.requires_grad for p in model.teacher_model.parameters())


def test_model_loss_returns_detection_and_distillation_terms():
    model = KDDistillationModel(student("yolov8s.yaml"), student(), DistillConfig(feature_loss="cwd"))
    batch = tiny_batch()
    model.train()
    loss, items = model.loss(batch)
    assert loss.shape == (4,) and list(items)[-3:] == ["kdcwd_loss", "kdcls_loss", "kdbox_loss"]
    loss.sum().backward()
    assert model.projector.losses["cwd"].align.convs[0].weight.grad is not None
    assert all(p.grad is None for p in model.teacher_model.parameters())
    model.eval()
    loss, eval_items = model.loss(batch)
    assert list(eval_items) == list(items) and eval_items["kdcwd_loss"] == 0 and loss[-1] == 0


def large_objects_batch(g: torch.Generator) -> dict:
    """A training batch of 4 random 64-px images with 12 large objects each (6 classes), drawn from ``g``:
    enough object area that the target scores sum to more than ultralytics' clamp of 1."""
    boxes = torch.cat((torch.rand(48, 2, generator=g) * 0.4 + 0.3, torch.rand(48, 2, generator=g) * 0.3 + 0.4), 1)
    return {"img": torch.rand(4, 3, 64, 64, generator=g), "batch_idx": torch.arange(4.0).repeat_interleave(12),
            "cls": torch.randint(0, 6, (48, 1), generator=g).float(), "bboxes": boxes}


def assigned_by_cls_loss(branch, preds, batch) -> tuple[torch.Tensor, float]:
    """``(fg_mask, target_scores_sum)`` of one ultralytics detection-loss ``branch`` on ``preds``: the positives
    as its loss returns them, and the sum read independently of the assigner's scores, from
    cls_loss = hyp.cls · Σ BCE / target_scores_sum (its BCE spied on for this call, then restored)."""
    bce_sums = []
    bce = branch.bce

    def spied_bce(*args):
        out = bce(*args)
        bce_sums.append(out.sum().item())
        return out

    branch.bce = spied_bce
    try:
        with torch.no_grad():
            (fg_mask, *_), (_, cls_loss, *_), *_ = branch.get_assigned_targets_and_loss(preds, batch)
    finally:
        branch.bce = bce
    return fg_mask, branch.hyp.cls * bce_sums[-1] / cls_loss.item()


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo26n.yaml"])
def test_bckd_is_normalised_by_the_students_target_scores_sum(yaml, monkeypatch):
    """BCKD divides by the normaliser of ultralytics' own cls loss in the same step (target_scores_sum),
    read here independently from cls_loss = hyp.cls · Σ BCE / target_scores_sum."""
    model = KDDistillationModel(student(yaml.replace("n.", "s.")), student(yaml), DistillConfig(feature_loss="none"))
    g = torch.Generator().manual_seed(0)  # many large objects: the target scores sum to more than the clamp 1
    batch = large_objects_batch(g)
    model.train()
    seen = {}
    original = BCKD.parts

    def spy(self, s, t, avg_factor=None):
        seen["avg_factor"] = avg_factor
        seen["default"] = original(self, s, t)
        return original(self, s, t, avg_factor)

    monkeypatch.setattr(BCKD, "parts", spy)
    _, items = model.loss(batch)
    criterion = model.student_model.criterion
    branch = getattr(criterion, "one2many", criterion)
    with torch.no_grad():
        preds = model.student_model(batch["img"])
    _, expected = assigned_by_cls_loss(branch, preds["one2many"] if "one2many" in preds else preds, batch)
    assert seen["avg_factor"].item() == pytest.approx(expected, rel=1e-4)
    assert seen["avg_factor"].item() > 1.0
    assert items["kdcls_loss"].item() != pytest.approx(seen["default"]["cls"].item(), rel=1e-3)  # not the default
    assert not criterion.__dict__.get("_forward_hooks") and not branch.assigner._forward_hooks  # hook removed


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo26n.yaml"])
def test_avg_factor_positives_divides_by_the_count_of_positive_anchors(yaml):
    """avg_factor=positives: BCKD divides by the assigner's positive anchors (the official BCKD code's
    num_total_pos), counted here independently from the fg_mask that ultralytics' loss returns. The same step
    with the default (target_scores_sum, read from cls_loss as above) gives terms in the ratio of the two."""
    g = torch.Generator().manual_seed(0)
    batch = large_objects_batch(g)
    teacher, pupil = student(yaml.replace("n.", "s.")), student(yaml)
    items = {}
    for kind in ("target_scores", "positives"):
        model = KDDistillationModel(teacher, pupil, DistillConfig(avg_factor=kind))
        model.train()
        items[kind] = model.loss(batch)[1]
    branch = getattr(pupil.criterion, "one2many", pupil.criterion)
    with torch.no_grad():
        preds = pupil(batch["img"])
    fg_mask, target_scores_sum = assigned_by_cls_loss(branch, preds["one2many"] if "one2many" in preds else preds,
                                                      batch)
    positives = fg_mask.sum().item()
    assert positives > 2 * target_scores_sum > 2  # an untrained student: few target scores, many positives
    for column in ("kdcls_loss", "kdbox_loss"):
        assert items["positives"][column].item() > 0
        assert items["positives"][column].item() * positives == pytest.approx(
            items["target_scores"][column].item() * target_scores_sum, rel=1e-4)
    assert DistillConfig.from_dict({"avg_factor": "positives"}).avg_factor == "positives"
    with pytest.raises(ValueError, match="avg_factor='count' is not one of"):
        DistillConfig.from_dict({"avg_factor": "count"})
    with pytest.raises(ValueError, match="avg_factor='count' is not one of"):  # built directly, not via from_dict
        DistillConfig(avg_factor="count")
    changed = DistillConfig()
    changed.avg_factor = "count"  # changed after it was built: the model checks again
    with pytest.raises(ValueError, match="avg_factor='count' is not one of"):
        KDDistillationModel(teacher, pupil, changed)


def test_one2one_distills_the_one_to_one_branch_of_end_to_end_heads(monkeypatch):
    """one2one=True adds BCKD on YOLO26's one-to-one branch: the student's and the teacher's one-to-one outputs
    (read here straight from the heads), normalised by that branch's own target_scores_sum (read from its cls
    loss as above), and its gradient reaches the student's one-to-one convs only (ultralytics detaches their
    inputs), not the one-to-many convs nor the backbone."""
    assert DistillConfig.from_dict({"one2one": "True"}).one2one
    assert not DistillConfig.from_dict({"one2one": "0"}).one2one
    model = KDDistillationModel(student("yolo26s.yaml"), student("yolo26n.yaml"), DistillConfig(one2one=True))
    g = torch.Generator().manual_seed(0)
    batch = large_objects_batch(g)
    with torch.no_grad():  # ultralytics builds the one-to-one convs as copies of the one-to-many ones: tell them apart
        for side in (model.student_model, model.teacher_model):
            head = detect_head(side)
            for p in [*head.one2one_cv2.parameters(), *head.one2one_cv3.parameters()]:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.train()
    calls = []
    original = BCKD.parts

    def spy(self, s, t, avg_factor=None):
        calls.append((s, t, avg_factor, original(self, s, t, avg_factor)))
        return calls[-1][-1]

    monkeypatch.setattr(BCKD, "parts", spy)
    _, items = model.loss(batch)
    assert list(items)[-4:] == ["kdcls_loss", "kdbox_loss", "kdocl_loss", "kdobx_loss"]
    assert len(calls) == 2
    s_o2o, t_o2o, avg_o2o, parts = calls[1]
    with torch.no_grad():
        student_preds = model.student_model(batch["img"])["one2one"]
        teacher_preds = model.teacher_model(batch["img"])[1]["one2one"]
    torch.testing.assert_close(s_o2o.cls, student_preds["scores"].transpose(1, 2))
    torch.testing.assert_close(t_o2o.cls, teacher_preds["scores"].transpose(1, 2))
    torch.testing.assert_close(s_o2o.box.flatten(1), student_preds["boxes"].transpose(1, 2).flatten(1))
    assert not torch.allclose(s_o2o.cls, calls[0][0].cls)  # not the one-to-many branch again
    branch = model.student_model.criterion.one2one
    assert avg_o2o.item() == pytest.approx(assigned_by_cls_loss(branch, student_preds, batch)[1], rel=1e-4)
    assert avg_o2o.item() != pytest.approx(calls[0][2].item(), rel=1e-3)
    # the columns are the weighted terms: the one-to-one branch weighs as BCKD's default, 0.5
    assert items["kdocl_loss"] == 0.5 * parts["cls"].detach() and items["kdobx_loss"] == 0.5 * parts["box"].detach()
    model.zero_grad()
    (parts["cls"] + parts["box"]).backward()
    head = detect_head(model.student_model)
    for convs in (head.one2one_cv2, head.one2one_cv3):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in convs.parameters())
    for module in (head.cv2, head.cv3, model.student_model.model[0]):
        assert all(p.grad is None for p in module.parameters())
    with pytest.raises(ValueError, match="the teacher's Detect head has none: leave one2one=False"):
        KDDistillationModel(student("yolov8s.yaml"), student("yolov8n.yaml"), DistillConfig(one2one=True))
    with pytest.raises(ValueError, match="the student's Detect head has none: leave one2one=False"):
        KDDistillationModel(student("yolo26s.yaml"), student("yolov8n.yaml"), DistillConfig(one2one=True))


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo26n.yaml"])
def test_sl2_is_ultralytics_own_feature_term_values_and_gradients(yaml):
    """feature_loss=sl2 against ultralytics' own DistillationModel (ultralytics/nn/distill_model.py, run here as
    the reference) on copies of the same teacher and student, with its projectors copied into ours: the same
    distillation value (ultralytics' dis_loss, weight dis=6) and the same gradients for the student and the
    projectors. YOLO26's end-to-end heads weight by both branches' scores, as ultralytics does."""
    import copy

    from ultralytics.nn.distill_model import DistillationModel

    torch.manual_seed(0)
    teacher, pupil = student(yaml.replace("n.", "s.")), student(yaml)
    if hasattr(detect_head(teacher), "one2one_cv3"):  # built as a copy of the one-to-many branch: make them differ
        with torch.no_grad():
            for p in detect_head(teacher).one2one_cv3.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    ours = KDDistillationModel(copy.deepcopy(teacher), copy.deepcopy(pupil),
                               DistillConfig(feature_loss="sl2", logit_loss="none", fold_teacher=False))
    theirs = DistillationModel(copy.deepcopy(teacher), copy.deepcopy(pupil))
    projectors = ours.projector.losses["sl2"].projectors
    assert len(projectors) == 3
    projectors.load_state_dict(theirs.projector.state_dict())  # the same layers, so the same keys
    g = torch.Generator().manual_seed(1)
    batch = tiny_batch(g)
    ours.train(), theirs.train()
    loss, items = ours.loss(batch)
    ref_loss, ref_items = theirs.loss(batch)
    assert ref_items["dis_loss"].item() > 0
    assert items["kdsl2_loss"].item() == pytest.approx(ref_items["dis_loss"].item(), rel=1e-5)
    assert loss[-1].item() == pytest.approx(ref_loss[-1].item(), rel=1e-5)
    loss[-1].backward()
    ref_loss[-1].backward()
    pairs = [*zip(ours.student_model.parameters(), theirs.student_model.parameters()),
             *zip(projectors.parameters(), theirs.projector.parameters())]
    reached = [(p.grad, q.grad) for p, q in pairs if q.grad is not None]
    assert len(reached) > 20 and all((p.grad is None) == (q.grad is None) for p, q in pairs)
    for grad, ref in reached:
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in ours.teacher_model.parameters())
    with pytest.raises(ValueError, match=r"feature_loss=sl2 \(ultralytics' own term\) distills the maps that feed"):
        KDDistillationModel(teacher, pupil, DistillConfig(feature_loss="sl2", feature_layers=[4, 6, 9]))


def test_several_logit_losses_share_the_head_outputs():
    from kdloss import LD

    config = DistillConfig(feature_loss="none", logit_loss="bckd+ld", ld_temperature=4.0)
    assert config.logit_losses() == ["bckd", "ld"]
    criterion = build_criterion(config, [8], [8])
    assert isinstance(criterion.losses["ld"], LD) and criterion.losses["ld"].temperature == 4.0
    model = KDDistillationModel(student("yolov8s.yaml"), student(), config)
    batch = tiny_batch()
    model.train()
    _, items = model.loss(batch)
    assert list(items)[-3:] == ["kdcls_loss", "kdbox_loss", "kdld_loss"] and items["kdld_loss"] > 0
    with pytest.raises(ValueError, match=r"logit_loss=ld distills box distributions.*reg_max=1"):
        KDDistillationModel(student("yolo26s.yaml"), student("yolo26n.yaml"), DistillConfig(logit_loss="ld"))


def test_bckd_term_weights_reach_its_two_columns():
    """bckd_cls_weight / bckd_box_weight scale BCKD's class and box terms (its two columns) separately; the
    defaults are the core BCKD's (1 and 4)."""
    import copy

    torch.manual_seed(0)
    teacher, pupil = student("yolov8s.yaml"), student()
    batch = tiny_batch()

    def columns(**keys):
        model = KDDistillationModel(copy.deepcopy(teacher), copy.deepcopy(pupil), DistillConfig(**keys))
        model.train()
        _, items = model.loss(batch)
        return float(items["kdcls_loss"]), float(items["kdbox_loss"])

    default_bckd = build_criterion(DistillConfig(), [8], [8]).losses["bckd"]
    assert (default_bckd.cls_weight, default_bckd.box_weight) == (BCKD().cls_weight, BCKD().box_weight) == (1.0, 4.0)
    cls, box = columns()
    assert cls > 0 and box > 0
    cls_only, no_box = columns(bckd_box_weight=0)
    assert no_box == 0 and cls_only == pytest.approx(cls, rel=1e-5)
    half_cls, half_box = columns(bckd_cls_weight=0.5, bckd_box_weight=2)
    assert half_cls == pytest.approx(cls / 2, rel=1e-5) and half_box == pytest.approx(box / 2, rel=1e-5)


def test_column_names_fit_ultralytics_fields_and_plot():
    """Each name fits the progress bar's 11-character field with a space, contains "loss" (results.png plots
    those) and differs from ultralytics' own loss names of every head (YOLO26: l1_loss)."""
    from kdloss.adapters.ultralytics.criterion import COLUMN_NAMES, column_name

    criterion = build_criterion(DistillConfig(feature_loss="cwd"), [8], [8])
    keys = [*criterion.part_keys(), "mgd", "mimic", "pkd", "sl2", "l1", "l2", "ld", "crosskd_cls", "crosskd_box",
            "o2o_l1", "o2o_l2", "o2o_ld", "o2o_bckd_cls", "o2o_bckd_box"]
    names = [column_name(key) for key in keys]
    assert set(names) >= set(COLUMN_NAMES.values())
    assert all(len(name) <= 10 and "loss" in name for name in names)
    assert len(set(names)) == len(names)
    assert not set(names) & {"box_loss", "cls_loss", "dfl_loss", "l1_loss", "seg_loss", "pose_loss", "kobj_loss"}
    header = ("%11s" * len(names)) % tuple(names)
    assert header.split() == names  # readable: no two names run together


def test_class_names_in_another_order_are_an_error():
    teacher, pupil = student("yolov8s.yaml"), student()
    teacher.names = {0: "cat", 1: "dog", 2: "car", 3: "bus", 4: "man", 5: "cup"}
    pupil.names = {0: "dog", 1: "cat", 2: "car", 3: "bus", 4: "man", 5: "cup"}
    with pytest.raises(ValueError, match=r"another order \(0: 'cat' vs 'dog', 1: 'dog' vs 'cat', \.\.\.\)"):
        KDDistillationModel(teacher, pupil, DistillConfig())
    KDDistillationModel(teacher, pupil, DistillConfig(feature_loss="cwd", logit_loss="none"))  # features do not care
    pupil.names = dict(teacher.names)
    KDDistillationModel(teacher, pupil, DistillConfig())


def test_other_class_names_warn(caplog):
    import logging

    teacher, pupil = student("yolov8s.yaml"), student()
    teacher.names = {i: str(i) for i in range(6)}  # e.g. saved without the dataset's names
    pupil.names = {0: "dog", 1: "cat", 2: "car", 3: "bus", 4: "man", 5: "cup"}
    with caplog.at_level(logging.WARNING, logger="ultralytics"):
        KDDistillationModel(teacher, pupil, DistillConfig())
    assert "teacher class names differ from the data's (0: '0' vs 'dog'" in caplog.text


@pytest.mark.parametrize("side", ["teacher", "student"])
def test_teacher_and_student_of_different_tasks_are_an_error(side):
    from ultralytics.nn.tasks import SegmentationModel

    seg = SegmentationModel("yolov8n-seg.yaml", nc=6, verbose=False)
    seg.args = get_cfg(overrides={"imgsz": 64})
    teacher, pupil = (seg, student()) if side == "teacher" else (student("yolov8s.yaml"), seg)
    tasks = ("segment", "detect") if side == "teacher" else ("detect", "segment")
    with pytest.raises(ValueError, match=f"the teacher is a {tasks[0]} model and the student a {tasks[1]} model"):
        KDDistillationModel(teacher, pupil, DistillConfig())


def test_other_heads_are_refused_clearly():
    with pytest.raises(ValueError, match="the student has a v10Detect head: kdloss distills YOLOv8/YOLO11/YOLO26 "
                                         "detect, segment, pose and OBB models"):
        KDDistillationModel(student("yolov8s.yaml"), student("yolov10n.yaml"), DistillConfig())


def test_error_class_count_mismatch():
    with pytest.raises(ValueError, match="teacher predicts 3 classes but the student 6: logit_loss=bckd"):
        KDDistillationModel(student(nc=3), student(nc=6), DistillConfig())
    KDDistillationModel(student(nc=3), student(nc=6), DistillConfig(feature_loss="cwd", logit_loss="none"))  # fine


def test_error_level_count_mismatch():
    with pytest.raises(ValueError, match=r"teacher Detect levels \(strides \[4.0, 8.0, 16.0, 32.0\]\) differ"):
        KDDistillationModel(student("yolov8n-p2.yaml"), student(), DistillConfig())
    with pytest.raises(ValueError, match=r"student_layers \[15, 18, 21\] and teacher_layers \[18, 21, 24, 27\]"):
        KDDistillationModel(student("yolov8n-p2.yaml"), student(), DistillConfig(feature_loss="cwd", logit_loss="none"))
    with pytest.raises(ValueError, match="teacher Detect head has 4 levels, the student's 3"):
        config = DistillConfig(feature_loss="cwd", logit_loss="none", student_layers=[15, 18, 21],
                               teacher_layers=[18, 21, 24])
        KDDistillationModel(student("yolov8n-p2.yaml"), student(), config)


def test_error_layer_out_of_range():
    with pytest.raises(ValueError, match=r"student layer 99 is out of range: the student has layers 0..22 and its "
                                         r"Detect head is layer 22"):
        KDDistillationModel(student(), student(), DistillConfig(feature_layers=[15, 18, 99]))


def test_error_spatial_mismatch_names_layers():
    config = DistillConfig(student_layers=[15, 18, 21], teacher_layers=[18, 15, 21])
    with pytest.raises(ValueError, match=r"student layer 15 and teacher layer 18 give different spatial sizes: "
                                         r"\(8, 8\) vs \(4, 4\)"):
        KDDistillationModel(student(), student(), config)


def test_progress_follows_epoch_and_batch():
    class FakeTrainer:
        epoch, epochs, train_loader = 1, 4, range(10)
        model = KDDistillationModel(student(), student(), DistillConfig())
        distill_config = DistillConfig(stop_epochs=2)

    trainer = FakeTrainer()
    trainer._kd_batch = 5
    _update_progress(trainer)
    assert trainer.model.progress == pytest.approx((1 + 5 / 10) / 4) and trainer._kd_batch == 6
    assert trainer.model.distilling  # epochs 0, 1 distil; 2, 3 do not
    trainer.epoch = 2
    _update_progress(trainer)
    assert not trainer.model.distilling


def test_stop_epochs_skips_the_teacher_and_zeroes_the_columns():
    model = KDDistillationModel(student("yolov8s.yaml"), student(), DistillConfig(feature_loss="cwd"))
    batch = tiny_batch()
    model.train()
    calls = []
    model._training_teacher().register_forward_hook(lambda *args: calls.append(1))  # the (folded) teacher that runs
    loss_on, items_on = model.loss(batch)
    model.distilling = False
    loss_off, items_off = model.loss(batch)
    assert len(calls) == 1  # the teacher ran for the distilled step only
    assert list(items_off) == list(items_on) and items_off["kdcwd_loss"] == 0 and loss_off[-1] == 0
    assert items_on["kdcwd_loss"] > 0
    torch.testing.assert_close(loss_off[:3], loss_on[:3])  # the detection loss itself is unchanged
    assert DistillConfig.from_dict({"stop_epochs": "3"}).stop_epochs == 3
    for bad in ("-1", "2.5", "x"):
        with pytest.raises(ValueError, match="stop_epochs"):
            DistillConfig.from_dict({"stop_epochs": bad})


def test_ddp_script_rebuilds_the_same_config(tmp_path):
    """ultralytics' multi-GPU launch rebuilds the trainer from vars(trainer.args): our keys must survive."""
    from kdloss.adapters.ultralytics import DistillationTrainer

    teacher = _teacher_file(tmp_path / "t.pt")
    overrides = {"model": "yolov8n.yaml", "data": "coco8.yaml", "teacher": str(teacher), "feature_loss": "mgd",
                 "feature_layers": [15, 18], "tau": 3.0, "project": str(tmp_path), "name": "ddp"}
    trainer = _init_without_dataset(DistillationTrainer, overrides)
    cfg = {**DEFAULT_CFG_DICT, "save_dir": ""}
    rebuilt = _init_without_dataset(DistillationTrainer, vars(trainer.args), cfg=cfg)
    assert rebuilt.distill_config == trainer.distill_config
    assert rebuilt.distill_config.feature_loss == "mgd" and rebuilt.distill_config.feature_layers == [15, 18]
    assert rebuilt.args.distill_model == str(teacher)


def _teacher_file(path):
    """An untrained yolov8n saved as an ultralytics checkpoint: the trainer checks its teacher file on start."""
    from ultralytics.nn.tasks import DetectionModel

    torch.save({"model": DetectionModel("yolov8n.yaml", nc=6, verbose=False), "train_args": {}}, path)
    return path


def _init_without_dataset(cls, overrides, cfg=None):
    """Build the trainer without resolving the dataset (which would download coco8)."""
    from unittest import mock

    from ultralytics.cfg import DEFAULT_CFG

    with mock.patch.object(cls, "get_dataset", lambda self: {"nc": 80, "names": {}, "channels": 3}):
        return cls(cfg=cfg or DEFAULT_CFG, overrides=dict(overrides))


def test_ultralytics_ddp_script_rebuilds_our_trainer(tmp_path):
    """ultralytics' multi-GPU launch pickles the trainer class and its args into a generated script that
    each worker runs; run that script's set-up (everything but training) in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    from ultralytics.utils.dist import generate_ddp_file

    from kdloss.adapters.ultralytics import DistillationTrainer
    from kdloss.adapters.ultralytics.data import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "shapes", train=4, val=2, imgsz=32)
    overrides = {"model": "yolov8n.yaml", "data": str(data), "teacher": str(_teacher_file(tmp_path / "t.pt")),
                 "feature_loss": "mgd", "feature_layers": [15, 18], "project": str(tmp_path), "name": "ddp"}
    trainer = DistillationTrainer(overrides=overrides)
    script = Path(generate_ddp_file(trainer))
    code = script.read_text().replace("trainer.train()", "print('CONFIG', trainer.distill_config)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "feature_loss='mgd'" in result.stdout and "feature_layers=[15, 18]" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["student=yolov8n.yaml", "teacher=/missing.pt", "data={data}"],
     "kdloss distill: teacher=/missing.pt: no such file"),
    (["student=yolov8n.yaml", "teacher={teacher}", "data=/nowhere/data.yaml"],
     "kdloss distill: data=/nowhere/data.yaml: no such file"),
    (["student=runs/none/best.pt", "teacher={teacher}", "data={data}"],
     "kdloss distill: student=runs/none/best.pt: no such file"),
])
def test_cli_checks_paths_before_training(args, message, tmp_path, capsys):
    """One line and exit code 2, before ultralytics would ask the internet for the file."""
    from kdloss.adapters.cli import main

    data, teacher = tmp_path / "data.yaml", tmp_path / "t.pt"
    data.write_text("path: .\n")
    teacher.write_bytes(b"")
    assert main(["distill", *(a.format(data=data, teacher=teacher) for a in args)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == message


def test_shipped_yaml_names_pass_the_path_check():
    from kdloss.adapters.ultralytics.api import check_paths

    check_paths(student="yolov8n.yaml", data="coco8.yaml")
    check_paths(student="yolo11s.yaml")
    check_paths(student="yolov8s-p2.yaml")
    with pytest.raises(ValueError, match=r"student=yolov8q9\.yaml: no such file"):
        check_paths(student="yolov8q9.yaml")



@pytest.mark.parametrize(("feature_loss", "kept"), [("none", 1), ("cwd", 4)])
def test_teacher_neck_maps_are_freed_before_the_student_runs_when_no_feature_loss_reads_them(feature_loss, kept):
    model = KDDistillationModel(student("yolov8s.yaml"), student(), DistillConfig(feature_loss=feature_loss))
    model.train()
    held = []
    model.student_model.model[0].register_forward_pre_hook(lambda *_: held.append(len(model._teacher_feats)))
    batch = tiny_batch()
    loss, items = model.loss(batch)
    assert held == [kept] and torch.isfinite(loss).all() and items["kdcls_loss"] > 0


def test_folded_teacher_runs_training_steps_and_is_never_saved():
    """fold_teacher=True (the default) runs the teacher's training forward on a Conv+BN-folded copy: the features
    and head outputs the losses read match the teacher's own (float rounding), the teacher itself is not run
    and stays bit-identical, and deep copies (the EMA) and pickles (checkpoints) leave the copy out."""
    import copy
    import pickle

    from kdloss.adapters.ultralytics.folding import fold_conv_bn

    torch.manual_seed(0)
    teacher = student("yolov8s.yaml")
    with torch.no_grad():
        for m in teacher.modules():  # trained-like statistics, so that folding changes the weights
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    config = DistillConfig(feature_loss="cwd", logit_loss="bckd")
    model = KDDistillationModel(teacher, student(), config)
    batch = tiny_batch()
    model.train()
    runs = []
    handle = model.teacher_model.model[0].register_forward_hook(lambda *a: runs.append(1))
    read = {}
    original = model._criterion_inputs

    def spy(*args):
        read["inputs"] = original(*args)
        return read["inputs"]

    model._criterion_inputs = spy
    loss, items = model.loss(batch)
    handle.remove()
    del model._criterion_inputs
    assert not runs and isinstance(model.__dict__["_folded_teacher"], torch.nn.Module)
    loss.sum().backward()
    with torch.no_grad():
        model.teacher_model(batch["img"])
        reference = [model._teacher_feats[i] for i in range(4)]
    for got, want in zip(read["inputs"]["cwd"][1], reference[:3]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert not torch.equal(got, want)  # really the folded copy, not the teacher
    torch.testing.assert_close(read["inputs"]["bckd"][1].cls, detection_output(reference[3], detect_head(teacher)).cls,
                               rtol=1e-4, atol=1e-4)
    for key, value in model.teacher_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.teacher_model.parameters())
    assert not any("folded" in key for key in model.state_dict())
    clone = copy.deepcopy(model)
    assert "_folded_teacher" not in clone.__dict__
    assert "_folded_teacher" not in pickle.loads(pickle.dumps(model)).__dict__
    model._teacher_feats.clear()
    _, clone_items = clone.loss(batch)  # the copy builds its own folded teacher, hooked to its own feature dict
    for key in ("kdcwd_loss", "kdcls_loss", "kdbox_loss"):
        torch.testing.assert_close(clone_items[key], items[key])
    unfolded = KDDistillationModel(teacher, copy.deepcopy(model.student_model), DistillConfig(
        feature_loss="cwd", logit_loss="bckd", fold_teacher=False)).train()
    _, unfolded_items = unfolded.loss(batch)
    assert "_folded_teacher" not in unfolded.__dict__
    for key in ("kdcwd_loss", "kdcls_loss", "kdbox_loss"):
        torch.testing.assert_close(unfolded_items[key], items[key], rtol=1e-3, atol=1e-5)
    rng = torch.get_rng_state()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_conv_bn(teacher).modules())
    assert torch.equal(rng, torch.get_rng_state())  # folding draws no random numbers: training's stream is as before


@pytest.mark.parametrize(("loss", "default"), [("cwd", 1.0), ("mgd", 1.0), ("mimic", 0.1), ("pkd", 0.1),
                                               ("sl2", 6.0)])
def test_feature_weight_defaults_per_loss_from_the_sweep(loss, default):
    """No feature_weight: each feature loss gets the weight the sweep picked (Mimic and PKD hurt at 1, were level
    at 0.1); a given one, from Python or the CLI, is used as it is."""
    criterion = build_criterion(DistillConfig(feature_loss=loss, logit_loss="bckd"), [8], [8])
    assert criterion.weights == {loss: default, "bckd": 0.5}
    given = DistillConfig.from_dict({"feature_loss": loss, "feature_weight": "2"})
    assert build_criterion(given, [8], [8]).weights[loss] == 2.0
    assert DistillConfig.from_dict({"feature_loss": loss, "feature_weight": "none"}).feature_loss_weight() == default
    with pytest.raises(ValueError, match="feature_weight must be >= 0"):
        DistillConfig.from_dict({"feature_loss": loss, "feature_weight": -1})
