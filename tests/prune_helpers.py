"""Test helper: prune an ultralytics YOLOv8 model to about half its channels with torch-pruning.

torch-pruning cannot follow C2f's ``chunk`` (it mis-indexes the split channels), so each C2f is first
replaced by an equivalent block whose two halves are separate convs (the same numbers, checked below).
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules import C2f, Conv


def _half(conv: Conv, start: int, stop: int) -> Conv:
    out = Conv(conv.conv.in_channels, stop - start, conv.conv.kernel_size[0])
    out.conv.weight.data = conv.conv.weight.data[start:stop].clone()
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(out.bn, name).data = getattr(conv.bn, name).data[start:stop].clone()
    out.bn.eps, out.bn.momentum = conv.bn.eps, conv.bn.momentum
    return out


class C2fSplitFree(nn.Module):
    """C2f with ``cv1(x).chunk(2)`` written as two convs ``cv0(x)``, ``cv1(x)``."""

    def __init__(self, block: C2f):
        super().__init__()
        c = block.c
        self.cv0, self.cv1 = _half(block.cv1, 0, c), _half(block.cv1, c, 2 * c)
        self.cv2, self.m = block.cv2, block.m
        for attr in ("f", "i", "type", "np"):
            setattr(self, attr, getattr(block, attr))
        self.train(block.training)

    def forward(self, x):
        y = [self.cv0(x), self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def prune_half(model: nn.Module, imgsz: int = 64) -> nn.Module:
    """Replace C2f blocks, then remove ~half of the channels of every layer except the Detect head."""
    model.eval()
    x = torch.randn(1, 3, imgsz, imgsz)
    reference = model(x)[0]
    for i, m in enumerate(model.model):
        if type(m) is C2f:
            model.model[i] = C2fSplitFree(m)
    torch.testing.assert_close(model(x)[0], reference)  # the replacement changes no number
    for p in model.parameters():
        p.requires_grad_(True)
    pruner = tp.pruner.MagnitudePruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=0.5, ignored_layers=[model.model[-1]])
    pruner.step()
    return model
