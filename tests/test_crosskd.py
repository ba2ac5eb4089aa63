"""CrossKD (arXiv 2306.11369) against its GFL setting written out plainly, and the crossing in the ultralytics
adapter.

The reference follows jbwang1997/CrossKD's GFL setting, read, not copied: the config
``configs/crosskd/crosskd_r18_gflv1_r50_fpn_1x_coco.py`` and ``pred_mimicking_loss_single`` in
``mmdet/models/detectors/crosskd_gfl.py``. ``loss_cls_kd`` is KDQualityFocalLoss (beta 1, weight 1: BCE against
the teacher's sigmoid times |σ(pred) − target|^beta, divided by the positive count); ``loss_reg_kd`` is
KnowledgeDistillationKLDivLoss (T 1, KL summed over the bins, weight 3) and ``loss_bbox_kd`` GIoULoss
(weight 2), both weighted by the teacher's top class score and divided by the sum of those weights. GIoU here
is torchvision's, decoding is written out with the DFL bin expectation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import detection_pair
from torchvision.ops import generalized_box_iou_loss

import kdloss.functional as KF
from kdloss import CrossKD, DetectionOutput


def decode(box_logits, anchors, strides):
    """(B, A, 4, reg_max) logits → (B·A, 4) xyxy pixels, as ultralytics' DFL + dist2bbox."""
    b, a, _, reg_max = box_logits.shape
    if reg_max == 1:
        dist = box_logits[..., 0]
    else:
        dist = box_logits.softmax(-1) @ torch.arange(reg_max, dtype=box_logits.dtype)
    centre = anchors.expand(b, a, 2)
    xyxy = torch.cat((centre - dist[..., :2], centre + dist[..., 2:]), -1) * strides[:, None]
    return xyxy.reshape(b * a, 4)


def reference_crosskd(crossed, teacher, avg_factor, beta=1.0, T=1.0):
    nc = crossed.cls.shape[-1]
    pred, target = crossed.cls.reshape(-1, nc), teacher.cls.reshape(-1, nc).detach().sigmoid()
    qfl = F.binary_cross_entropy_with_logits(pred, target, reduction="none") * (pred.sigmoid() - target).abs().pow(beta)
    cls = qfl.sum() / avg_factor
    weights = target.max(dim=1)[0]  # tea_cls_score.max(dim=1)[0].sigmoid()
    reg_max = crossed.box.shape[-1]
    box = 2.0 * (weights * generalized_box_iou_loss(decode(crossed.box, crossed.anchors, crossed.strides),
                                                    decode(teacher.box.detach(), teacher.anchors, teacher.strides),
                                                    reduction="none")).sum() / weights.sum()
    if reg_max > 1:
        kl = F.kl_div(F.log_softmax(crossed.box.reshape(-1, reg_max) / T, dim=1),
                      F.softmax(teacher.box.reshape(-1, reg_max).detach() / T, dim=1), reduction="none").sum(1) * T * T
        box = box + 3.0 * (weights.repeat_interleave(4) * kl).sum() / 4.0 / weights.sum()
    return cls, box


@pytest.mark.parametrize("impl", ["eager", "fused", "compile"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reg_max", [16, 1])
def test_crosskd_equals_the_gfl_setting_values_and_gradients(impl, dtype, reg_max):
    crossed, teacher = detection_pair(dtype=dtype, seed=5, reg_max=reg_max)
    if reg_max == 1:  # one distance per side: keep the boxes valid (torchvision's GIoU assumes x2 >= x1)
        crossed = DetectionOutput(crossed.cls, (crossed.box.detach().abs() + 0.5).requires_grad_(True),
                                  crossed.anchors, crossed.strides)
        teacher = DetectionOutput(teacher.cls, teacher.box.abs() + 0.5, teacher.anchors, teacher.strides)
    cls, box = KF.crosskd_parts(crossed, teacher, avg_factor=3.0, impl=impl)
    (cls + 0.5 * box).backward()
    ref_cls_in = crossed.cls.detach().clone().requires_grad_(True)
    ref_box_in = crossed.box.detach().clone().requires_grad_(True)
    ref_cls, ref_box = reference_crosskd(DetectionOutput(ref_cls_in, ref_box_in, crossed.anchors, crossed.strides),
                                         teacher, 3.0)
    (ref_cls + 0.5 * ref_box).backward()
    tol = {"rtol": 1e-9, "atol": 1e-11} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}
    assert cls.dtype == box.dtype == dtype
    torch.testing.assert_close(cls, ref_cls, **tol)
    torch.testing.assert_close(box, ref_box, **tol)
    torch.testing.assert_close(crossed.cls.grad, ref_cls_in.grad, **tol)
    torch.testing.assert_close(crossed.box.grad, ref_box_in.grad, **tol)


def test_crosskd_gradcheck_float64_and_default_normaliser():
    crossed, teacher = detection_pair(batch=1, sizes=((2, 2),), nc=3, reg_max=5, seed=6)

    def total(cls, box):
        return KF.crosskd(DetectionOutput(cls, box, crossed.anchors, crossed.strides), teacher, beta=1.5,
                          temperature=2.0, impl="eager")

    assert torch.autograd.gradcheck(total, (crossed.cls, crossed.box))
    soft_count = torch.sigmoid(teacher.cls).amax(-1).sum().clamp(min=1)
    torch.testing.assert_close(KF.crosskd(crossed, teacher), KF.crosskd(crossed, teacher, avg_factor=soft_count))


def test_crosskd_is_zero_when_the_crossed_predictions_are_the_teachers():
    _, teacher = detection_pair(seed=7)
    same = DetectionOutput(teacher.cls.clone().requires_grad_(True), teacher.box.clone().requires_grad_(True),
                           teacher.anchors, teacher.strides)
    cls, box = KF.crosskd_parts(same, teacher, avg_factor=2.0)
    assert cls.item() == pytest.approx(0.0, abs=1e-12) and box.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("impl", ["eager", "fused"])
def test_crosskd_empty_batch_and_errors(impl):
    crossed, teacher = detection_pair(batch=0)
    cls, box = KF.crosskd_parts(crossed, teacher, impl=impl)
    assert cls.item() == box.item() == 0.0
    (cls + box).backward()
    assert crossed.cls.grad is not None
    with pytest.raises(ValueError, match="CrossKD: beta must be > 0"):
        CrossKD(4, 4, beta=0)
    with pytest.raises(ValueError, match="CrossKD: student and teacher box shapes differ"):
        KF.crosskd(detection_pair(reg_max=8)[0], detection_pair(reg_max=6)[1])
    with pytest.raises(ValueError, match="CrossKD: impl must be one of"):
        KF.crosskd(*detection_pair(), impl="triton")


def test_module_aligns_the_student_features_and_runs_the_teacher_tail():
    """The module maps each student feature onto the teacher's width with a 1x1 conv before the tail."""
    torch.manual_seed(0)
    _, teacher = detection_pair(batch=2, sizes=((4, 4),), strides=(8,), nc=3, reg_max=4, dtype=torch.float32)
    box_conv, cls_conv = torch.nn.Conv2d(6, 16, 1), torch.nn.Conv2d(6, 3, 1)
    for p in (*box_conv.parameters(), *cls_conv.parameters()):
        p.requires_grad_(False)  # a frozen teacher tail

    def tail(feats):
        box, cls = box_conv(feats[0]), cls_conv(feats[1])
        return DetectionOutput(cls.flatten(2).transpose(1, 2), box.flatten(2).permute(0, 2, 1).reshape(2, 16, 4, 4),
                               teacher.anchors, teacher.strides)

    loss = CrossKD(student_channels=[4, 6], teacher_channels=[6, 6], loss_weight=2.0)
    feats = [torch.randn(2, 4, 4, 4, requires_grad=True), torch.randn(2, 6, 4, 4, requires_grad=True)]
    parts = loss.parts(feats, teacher, tail, avg_factor=1.5)
    aligned = [loss.align.convs[0](feats[0]), feats[1]]
    expected = KF.crosskd_parts(tail(aligned), teacher, avg_factor=1.5)
    torch.testing.assert_close(parts["cls"], 2.0 * expected.cls)
    torch.testing.assert_close(parts["box"], 2.0 * expected.box)
    (parts["cls"] + parts["box"]).backward()
    assert feats[0].grad.abs().sum() > 0 and loss.align.convs[0].weight.grad.abs().sum() > 0
    assert isinstance(loss.align.convs[1], torch.nn.Identity)
    with pytest.raises(ValueError, match="CrossKD: student features at level 0 should have 4 channels"):
        loss(feats[::-1], teacher, tail)
    with pytest.raises(TypeError, match=r"CrossKD: teacher_head_tail must return a kdloss\.DetectionOutput, got list"):
        loss(feats, teacher, lambda feats: feats)


# --- the crossing in the ultralytics adapter ---------------------------------------------------------------------

def _model(yaml, nc=6, imgsz=64):
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(yaml, nc=nc, verbose=False)
    model.args = get_cfg(overrides={"imgsz": imgsz})
    return model


def _batch():
    return {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]),
            "cls": torch.tensor([[1.0], [2.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.2], [0.4, 0.4, 0.2, 0.3]])}


@pytest.mark.parametrize("layer", [1, 2])
@pytest.mark.parametrize(("student_yaml", "teacher_yaml"), [("yolov8n.yaml", "yolov8s.yaml"),
                                                            ("yolo26n.yaml", "yolo26s.yaml")])
def test_teacher_tail_on_the_teachers_own_features_gives_its_predictions(student_yaml, teacher_yaml, layer):
    from kdloss.adapters.ultralytics.crosskd import CrossingPoints, teacher_head_tail
    from kdloss.adapters.ultralytics.heads import detect_head, detection_output

    teacher = _model(teacher_yaml).eval()
    head = detect_head(teacher)
    with torch.no_grad(), CrossingPoints(head, layer) as crossing:
        preds = teacher(torch.rand(2, 3, 64, 64))
    assert not any(m._forward_hooks for m in crossing.modules)  # removed on exit
    own = detection_output(preds, head)
    with torch.no_grad():
        crossed = teacher_head_tail(head, layer)(crossing.feats)
    torch.testing.assert_close(crossed.cls, own.cls)
    torch.testing.assert_close(crossed.box, own.box)
    torch.testing.assert_close(crossed.anchors, own.anchors)


def test_crosskd_in_the_adapter_reaches_the_student_through_the_frozen_teacher_head():
    from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel
    from kdloss.adapters.ultralytics.heads import detect_head

    model = KDDistillationModel(_model("yolov8s.yaml"), _model("yolov8n.yaml"),
                                DistillConfig.from_dict({"feature_loss": "none", "logit_loss": "crosskd"}))
    model.train()
    teacher_state = {k: v.clone() for k, v in model.teacher_model.state_dict().items()}
    loss, items = model.loss(_batch())
    assert {"kdxcl_loss", "kdxbx_loss"} <= items.keys() and items["kdxbx_loss"] > 0
    s_head = detect_head(model.student_model)
    assert not any(m._forward_hooks for branch in (*s_head.cv2, *s_head.cv3) for m in branch)

    # the distillation part alone: gradients reach the student's first head convs and the align convs, never the
    # student's last head layers (they learn from the labels only) nor the teacher
    model.zero_grad()
    loss[-1].backward()
    for branch in (*s_head.cv2, *s_head.cv3):
        assert branch[0].conv.weight.grad.abs().sum() > 0
        assert branch[-1].weight.grad is None or branch[-1].weight.grad.abs().sum() == 0
    align = model.projector.losses["crosskd"].align
    assert align.channels == [(64, 64)] * 3 + [(64, 128)] * 3  # box branches 64 wide in both, class 64 vs 128
    assert all(p.grad is not None for p in align.parameters())
    assert all(p.grad is None for p in model.teacher_model.parameters())
    for key, value in model.teacher_model.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key


def test_crosskd_layer_out_of_range_is_a_clear_error():
    from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel

    with pytest.raises(ValueError, match=r"crosskd_layer=3: the student's Detect branches have \[3\] layers"):
        KDDistillationModel(_model("yolov8s.yaml"), _model("yolov8n.yaml"),
                            DistillConfig.from_dict({"logit_loss": "crosskd", "crosskd_layer": 3}))
    with pytest.raises(ValueError, match="crosskd_layer must be >= 1"):
        DistillConfig.from_dict({"crosskd_layer": 0})


def test_the_benchmarks_reference_is_the_same_loss():
    """benchmarks/references.py's official-style CrossKD (what the speed table compares against) agrees."""
    from benchmarks.references import crosskd_official_style

    crossed, teacher = detection_pair(seed=8, reg_max=16)
    expected = crosskd_official_style(crossed.cls, crossed.box, teacher.cls, teacher.box, crossed.anchors,
                                      crossed.strides)
    torch.testing.assert_close(KF.crosskd(crossed, teacher, impl="eager"), expected, rtol=1e-9, atol=1e-11)
