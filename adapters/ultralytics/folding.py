"""The teacher's training-time forward on a copy with every Conv+BatchNorm folded into one conv."""

from __future__ import annotations

import copy

from torch import nn
from ultralytics.nn.modules import Conv, Conv2
from ultralytics.utils.torch_utils import fuse_conv_and_bn


def fold_conv_bn(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in which every ultralytics ``Conv`` (and ``DWConv``) has its BatchNorm folded
    into its conv (ultralytics' ``fuse_conv_and_bn``, what ``model.fuse()`` does to these layers) and runs
    ``forward_fuse``, without ``model``'s forward hooks. ``model`` itself is untouched. Unlike ``model.fuse()``
    it keeps both branches of end-to-end heads. Outputs match the unfolded eval-mode model up to float
    rounding (about 1e-4 on YOLOv8s)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._forward_hooks_with_kwargs,
                      module._forward_pre_hooks_with_kwargs, module._forward_hooks_always_called):
            hooks.clear()  # deepcopy copied them: hooks that record features would write to the teacher's dicts
        if isinstance(module, Conv) and hasattr(module, "bn"):
            if isinstance(module, Conv2) and hasattr(module, "cv2"):
                module.fuse_convs()
            module.conv = fuse_conv_and_bn(module.conv, module.bn)
            delattr(module, "bn")
            module.forward = module.forward_fuse
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded
