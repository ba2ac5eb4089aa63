"""The result of a loss with a class term and a box term (BCKD, CrossKD)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class ClassBoxParts(NamedTuple):
    """A loss's class and box terms, each a scalar tensor already multiplied by its weight and normalised;
    the loss is their sum."""

    cls: Tensor
    box: Tensor
