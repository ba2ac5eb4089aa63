"""Shared builders for tests: random feature pyramids and random detection-head outputs."""

from __future__ import annotations

import os
import tempfile
import textwrap

# ultralytics reads these at import: no downloads, no pip installs, settings in a throwaway folder.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="kdloss-yolo-cfg-"))

import torch

# Triton kernels run on CPU tensors through Triton's interpreter when there is no GPU (read at import).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kdloss import DetectionOutput

# Kernel tests run where the kernels run: CUDA when there is a GPU, else the CPU (Triton interpreted).
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def features(shapes, dtype=torch.float32, seed=0, requires_grad=False):
    """One random (N, C, H, W) tensor per shape."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for shape in shapes]
    for t in out:
        t.requires_grad_(requires_grad)
    return out


def anchor_grid(sizes, strides):
    """Anchor centres (A, 2) in stride units and strides (A,), level by level, like YOLOv8."""
    anchors, stride_list = [], []
    for (h, w), s in zip(sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        anchors.append(torch.stack((xs.flatten(), ys.flatten()), -1))
        stride_list.append(torch.full((h * w,), float(s)))
    return torch.cat(anchors).double(), torch.cat(stride_list).double()


def detection_pair(batch=2, sizes=((4, 4), (2, 2)), strides=(8, 16), nc=5, reg_max=8,
                   dtype=torch.float64, seed=0, requires_grad=True):
    """Random student and teacher DetectionOutput on the same anchors."""
    g = torch.Generator().manual_seed(seed)
    anchors, strides_t = anchor_grid(sizes, strides)
    a = anchors.shape[0]

    def make(grad):
        cls = (torch.randn(batch, a, nc, generator=g, dtype=torch.float64) * 2 - 2).to(dtype)
        box = (torch.randn(batch, a, 4, reg_max, generator=g, dtype=torch.float64) * 2).to(dtype)
        cls.requires_grad_(grad)
        box.requires_grad_(grad)
        return DetectionOutput(cls=cls, box=box, anchors=anchors.to(dtype), strides=strides_t.to(dtype))

    return make(requires_grad), make(False)


# Prepended to code run in a subprocess to prove a checkpoint needs no kdloss: importing kdloss fails there.
BLOCK_KDLOSS = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "kdloss" or name.startswith("kdloss."):
                raise ImportError("kdloss is not installed here")

    sys.meta_path.insert(0, Block())
""")
