"""Distillation losses written the way the popular implementations write them (materialised
softmaxes and intermediates), as the baseline the benchmarks compare against. Our own code, after the
structure of mmrazor's ChannelWiseDivergence, the official MGD code and the official BCKD (mmdet) code."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cwd_mmrazor_style(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    n, c, h, w = teacher.shape
    softmax_t = F.softmax(teacher.reshape(-1, h * w) / tau, dim=1)
    logsoftmax = nn.LogSoftmax(dim=1)
    loss = torch.sum(softmax_t * logsoftmax(teacher.reshape(-1, h * w) / tau)
                     - softmax_t * logsoftmax(student.reshape(-1, h * w) / tau)) * (tau**2)
    return loss / (c * n)


def pkd_mmrazor_style(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mmrazor's PKDLoss: per channel standardisation over (N, H, W) by permute/reshape, then MSE / 2."""
    def norm(feat):
        n, c, h, w = feat.shape
        feat = feat.permute(1, 0, 2, 3).reshape(c, -1)
        feat = (feat - feat.mean(dim=-1, keepdim=True)) / (feat.std(dim=-1, keepdim=True) + 1e-6)
        return feat.reshape(c, n, h, w).permute(1, 0, 2, 3)

    return F.mse_loss(norm(student), norm(teacher)) / 2


def ld_official_style(s_box, t_box, t_cls, temperature: float = 10.0) -> torch.Tensor:
    """LD's knowledge_distillation_kl_div_loss per distribution (kl_div, mean over bins, T²), weighted per
    anchor by the teacher's class confidence and normalised by its soft count (kdloss's weighting)."""
    reg_max = s_box.shape[-1]
    target = F.softmax(t_box.reshape(-1, reg_max) / temperature, dim=1).detach()
    kl = F.kl_div(F.log_softmax(s_box.reshape(-1, reg_max) / temperature, dim=1), target,
                  reduction="none").mean(1) * temperature**2
    anchor_weight = t_cls.sigmoid().max(dim=-1)[0]
    weight = anchor_weight.reshape(-1, 1).expand(-1, 4).reshape(-1)
    return (kl * weight).sum() / 4 / anchor_weight.sum().clamp(min=1.0)


def mimic_reference(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student, teacher)


def mgd_official_style(student: torch.Tensor, teacher: torch.Tensor, generation: nn.Module,
                       alpha_mgd: float = 2e-5, lambda_mgd: float = 0.65) -> torch.Tensor:
    n, _, h, w = teacher.shape
    mat = torch.rand((n, 1, h, w)).to(student.device)
    mat = torch.where(mat > 1 - lambda_mgd, 0, 1).to(student.device)
    masked = torch.mul(student, mat)
    new_feature = generation(masked)
    return nn.MSELoss(reduction="sum")(new_feature, teacher) / n * alpha_mgd


def _outputs(cls: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    return torch.cat((cls.flatten(1), box.flatten(1)), 1)


def l1_reference(s_cls, s_box, t_cls, t_box) -> torch.Tensor:
    return F.l1_loss(_outputs(s_cls, s_box), _outputs(t_cls, t_box))


def l2_reference(s_cls, s_box, t_cls, t_box) -> torch.Tensor:
    return F.mse_loss(_outputs(s_cls, s_box), _outputs(t_cls, t_box))


def _integral(box_logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    project = torch.linspace(0, reg_max - 1, reg_max, device=box_logits.device)
    x = F.softmax(box_logits.reshape(-1, reg_max), dim=1)
    return F.linear(x, project.type_as(x)).reshape(-1, 4)


def _bbox_overlaps_giou(bboxes1: torch.Tensor, bboxes2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])
    lt = torch.max(bboxes1[..., :2], bboxes2[..., :2])
    rb = torch.min(bboxes1[..., 2:], bboxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - overlap
    enclosed_lt = torch.min(bboxes1[..., :2], bboxes2[..., :2])
    enclosed_rb = torch.max(bboxes1[..., 2:], bboxes2[..., 2:])
    union = torch.max(union, union.new_tensor([eps]))
    ious = overlap / union
    enclose_wh = (enclosed_rb - enclosed_lt).clamp(min=0)
    enclose_area = torch.max(enclose_wh[..., 0] * enclose_wh[..., 1], union.new_tensor([eps]))
    return ious - (enclose_area - union) / enclose_area


def bckd_official_style(s_cls, s_box, t_cls, t_box, anchors, strides, beta: float = 1.0,
                        cls_weight: float = 1.0, box_weight: float = 4.0) -> torch.Tensor:
    b = s_cls.shape[0]
    reg_max = s_box.shape[-1]
    pred_sigmoid = s_cls.sigmoid()
    target = t_cls.sigmoid()
    avg_factor = target.max(dim=-1)[0].sum().clamp(min=1.0)
    scale_factor = (target - pred_sigmoid).abs().pow(beta)
    loss_cls = F.binary_cross_entropy_with_logits(s_cls, target, reduction="none") * scale_factor
    loss_cls = cls_weight * loss_cls.sum() / avg_factor
    weight = (target - pred_sigmoid).abs().max(dim=-1)[0].detach().reshape(-1)
    points = anchors.repeat(b, 1)
    stride = strides.repeat(b)[:, None]
    dist_s = _integral(s_box, reg_max)
    dist_t = _integral(t_box, reg_max).detach()
    box_s = torch.cat((points - dist_s[:, :2], points + dist_s[:, 2:]), 1) * stride
    box_t = torch.cat((points - dist_t[:, :2], points + dist_t[:, 2:]), 1) * stride
    loss_box = (1 - _bbox_overlaps_giou(box_s, box_t)) * weight
    return loss_cls + box_weight * loss_box.sum() / avg_factor


def crosskd_official_style(c_cls, c_box, t_cls, t_box, anchors, strides, temperature: float = 1.0) -> torch.Tensor:
    """CrossKD's GFL setting on crossed predictions (jbwang1997/CrossKD ``crosskd_gfl.py``
    ``pred_mimicking_loss_single``): quality-focal soft BCE (beta 1) over all anchors, KL of the bins (T, summed
    over bins, weight 3) and GIoU (weight 2), both weighted by the teacher's top score and divided by its sum.
    The class term is divided by the soft count too (no assigner here), as kdloss does without ``avg_factor``."""
    b = c_cls.shape[0]
    reg_max = c_box.shape[-1]
    target = t_cls.sigmoid()
    weight = target.max(dim=-1)[0].reshape(-1)
    normaliser = weight.sum()
    loss_cls = F.binary_cross_entropy_with_logits(c_cls, target, reduction="none") * (target - c_cls.sigmoid()).abs()
    loss_cls = loss_cls.sum() / normaliser.clamp(min=1.0)
    kl = F.kl_div(F.log_softmax(c_box.reshape(-1, reg_max) / temperature, dim=1),
                  F.softmax(t_box.reshape(-1, reg_max) / temperature, dim=1).detach(),
                  reduction="none").sum(1) * temperature**2
    loss_kl = (kl * weight.repeat_interleave(4)).sum() / 4.0 / normaliser
    points = anchors.repeat(b, 1)
    stride = strides.repeat(b)[:, None]
    dist_c = _integral(c_box, reg_max)
    dist_t = _integral(t_box, reg_max).detach()
    box_c = torch.cat((points - dist_c[:, :2], points + dist_c[:, 2:]), 1) * stride
    box_t = torch.cat((points - dist_t[:, :2], points + dist_t[:, 2:]), 1) * stride
    loss_giou = ((1 - _bbox_overlaps_giou(box_c, box_t)) * weight).sum() / normaliser
    return loss_cls + 3.0 * loss_kl + 2.0 * loss_giou
