"""kdloss in a few lines: distill a small conv student's 3-level features and head outputs from a
frozen teacher on random images. Runs in seconds on a CPU; prints each loss as it falls."""

from __future__ import annotations

import torch
from torch import nn

from kdloss import BCKD, CWD, DetectionOutput, DistillationLoss, Schedule


class TinyDetector(nn.Module):
    """Three strided conv stages (P3-P5 stand-ins) and a shared YOLO-style head: nc classes, 4×reg_max DFL."""

    def __init__(self, width: int, nc: int = 4, reg_max: int = 8):
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        chans = [3, width, 2 * width, 4 * width]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.SiLU())
            for i in range(3)
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, nc + 4 * reg_max, 1) for c in chans[1:])

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], DetectionOutput]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        out = torch.cat([head(f).flatten(2) for head, f in zip(self.heads, feats)], 2).transpose(1, 2)
        b, a, _ = out.shape
        anchors, strides = [], []
        for f, stride in zip(feats, (2, 4, 8)):
            h, w = f.shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchors.append(torch.stack((xs.flatten(), ys.flatten()), -1))
            strides.append(torch.full((h * w,), float(stride)))
        return feats, DetectionOutput(
            cls=out[..., : self.nc],
            box=out[..., self.nc :].reshape(b, a, 4, self.reg_max),
            anchors=torch.cat(anchors),
            strides=torch.cat(strides),
        )


def main(steps: int = 60) -> None:
    torch.manual_seed(0)
    teacher, student = TinyDetector(width=16).eval(), TinyDetector(width=8)
    for p in teacher.parameters():
        p.requires_grad_(False)
    criterion = DistillationLoss(
        {"cwd": CWD(tau=1.0, student_channels=[8, 16, 32], teacher_channels=[16, 32, 64]), "bckd": BCKD()},
        schedules={"cwd": Schedule("cosine", final_ratio=0.1)},
    )
    optimizer = torch.optim.AdamW([*student.parameters(), *criterion.parameters()], lr=3e-3)
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        t_feats, t_out = teacher(images)
    for step in range(steps + 1):
        s_feats, s_out = student(images)
        total, parts = criterion({"cwd": (s_feats, t_feats), "bckd": (s_out, t_out)}, progress=step / steps)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if step % 10 == 0:
            shown = "  ".join(f"{k}={v.item():.4f}" for k, v in parts.items())
            print(f"step {step:3d}/{steps}  total={total.item():.4f}  {shown}")


if __name__ == "__main__":
    main()
