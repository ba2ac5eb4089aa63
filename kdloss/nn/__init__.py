"""kdloss losses as ``nn.Module``s: hyper-parameters and learnable parts around ``kdloss.functional``."""

from kdloss.nn.align import ChannelAlign
from kdloss.nn.base import DistillLoss
from kdloss.nn.crosskd import CrossKD
from kdloss.nn.feature import CWD, MGD, PKD, Mimic
from kdloss.nn.logit import BCKD, L1, L2, LD

__all__ = ["BCKD", "CWD", "L1", "L2", "LD", "MGD", "PKD", "ChannelAlign", "CrossKD", "DistillLoss", "Mimic"]
