"""What every kdloss module shares: a ``loss_weight`` and a ``parts()`` view for logging."""

from __future__ import annotations

from torch import Tensor, nn


class DistillLoss(nn.Module):
    """Base of all kdloss modules. ``forward(student, teacher, ...)`` returns a scalar tensor.

    ``parts(...)`` takes the same arguments and returns the named terms whose sum is ``forward``'s
    result, keyed by ``part_names`` (one term ``{"loss": ...}`` unless the loss has several, like BCKD's
    ``cls`` and ``box``).
    """

    part_names: tuple[str, ...] = ("loss",)

    def __init__(self, loss_weight: float = 1.0, check_finite: bool = False):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.check_finite = check_finite

    def parts(self, *args, **kwargs) -> dict[str, Tensor]:
        return {"loss": self(*args, **kwargs)}

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}"
