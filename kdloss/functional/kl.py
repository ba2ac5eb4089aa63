"""The softmax KL divergence that CWD, LD and CrossKD share, written once."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def softmax_kl_terms(teacher_logits: Tensor, student_logits: Tensor, dim: int) -> Tensor:
    """The summands of ``KL(softmax(t) ‖ softmax(s))`` along ``dim``: ``q_t · (log q_t − log q_s)``, same shape
    as the inputs (each loss reduces them its own way: CWD sums all, LD averages over the bins, CrossKD sums
    over them). Gradients flow into both sides; callers detach the teacher."""
    log_q_t = F.log_softmax(teacher_logits, dim=dim)
    log_q_s = F.log_softmax(student_logits, dim=dim)
    return log_q_t.exp() * (log_q_t - log_q_s)
