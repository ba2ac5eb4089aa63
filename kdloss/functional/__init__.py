"""The maths of every kdloss loss as plain functions of tensors (no modules, no state)."""

from kdloss.functional.bckd import BCKDParts, bckd, bckd_parts
from kdloss.functional.crosskd import CrossKDParts, crosskd, crosskd_parts
from kdloss.functional.cwd import cwd
from kdloss.functional.ld import ld
from kdloss.functional.logit import l1, l2
from kdloss.functional.mgd import mgd, mgd_mask
from kdloss.functional.mimic import mimic
from kdloss.functional.pkd import pkd

__all__ = [
    "BCKDParts", "CrossKDParts", "bckd", "bckd_parts", "crosskd", "crosskd_parts", "cwd", "l1", "l2", "ld", "mgd",
    "mgd_mask", "mimic", "pkd",
]
