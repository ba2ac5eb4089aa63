"""What every kdloss module shares: a ``loss_weight`` and a ``parts()`` view for logging."""

from __future__ import annotations

from torch import Tensor, nn

from kdloss._checks import check_non_negative
from kdloss.ops import resolve_impl


class DistillLoss(nn.Module):
    """Base of all kdloss modules. ``forward(student, teacher, ...)`` returns a scalar tensor.

    ``parts(...)`` takes the same arguments and returns the named terms whose sum is ``forward``'s
    result, keyed by ``part_names`` (one term ``{"loss": ...}`` unless the loss has several, like BCKD's
    ``cls`` and ``box``).

    ``impl`` picks the implementation (``"auto"``, ``"eager"``, ``"fused"``, ``"compile"``; all give the same
    numbers, see :mod:`kdloss.ops`); ``check_finite`` raises on NaN/inf inputs. Hyper-parameters are validated
    at construction (a weight is a finite number >= 0, a temperature a finite number > 0): ``ValueError``.
    """

    part_names: tuple[str, ...] = ("loss",)

    def __init__(self, loss_weight: float = 1.0, check_finite: bool = False, impl: str = "auto"):
        super().__init__()
        resolve_impl(type(self).__name__, impl)
        check_non_negative(type(self).__name__, "loss_weight", loss_weight)
        self.loss_weight = float(loss_weight)
        self.check_finite = check_finite
        self.impl = impl

    def forward(self, *args, **kwargs) -> Tensor:
        """The sum of :meth:`parts` in ``part_names`` order (losses of one part override this instead)."""
        if type(self).parts is DistillLoss.parts:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward nor parts")
        parts = self.parts(*args, **kwargs)
        total = parts[self.part_names[0]]
        for name in self.part_names[1:]:
            total = total + parts[name]
        return total

    def parts(self, *args, **kwargs) -> dict[str, Tensor]:
        return {"loss": self(*args, **kwargs)}

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, impl={self.impl!r}"
