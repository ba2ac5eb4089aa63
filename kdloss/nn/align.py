"""Learnable 1x1 convs that map student channels onto teacher channels, one per feature level."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

Channels = int | Sequence[int]


def per_level_channels(loss: str, student_channels: Channels, teacher_channels: Channels) -> list[tuple[int, int]]:
    """Pair up channel counts; an int on one side is repeated to the other side's level count."""
    s = [student_channels] if isinstance(student_channels, int) else list(student_channels)
    t = [teacher_channels] if isinstance(teacher_channels, int) else list(teacher_channels)
    if len(s) == 1 and len(t) > 1:
        s = s * len(t)
    if len(t) == 1 and len(s) > 1:
        t = t * len(s)
    if len(s) != len(t) or not s:
        raise ValueError(f"{loss}: student_channels {student_channels} and teacher_channels {teacher_channels} "
                         "must give one channel count per level")
    for c in (*s, *t):
        if not isinstance(c, int) or c <= 0:
            raise ValueError(
                f"{loss}: channel counts must be positive ints, got {student_channels} / {teacher_channels}"
            )
    return list(zip(s, t))


class ChannelAlign(nn.Module):
    """Per level: a 1x1 ``Conv2d(student_channels, teacher_channels)`` where they differ, identity elsewhere
    (as MGD's official code, yzd-v/MGD ``FeatureLoss``, builds its ``align``).

    Input: a list of ``(N, C_s[l], H_l, W_l)`` tensors; output: a list of ``(N, C_t[l], H_l, W_l)`` tensors.
    """

    def __init__(self, loss: str, student_channels: Channels, teacher_channels: Channels):
        super().__init__()
        self.loss = loss
        self.channels = per_level_channels(loss, student_channels, teacher_channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(s, t, kernel_size=1) if s != t else nn.Identity() for s, t in self.channels
        )

    def forward(self, student: list[Tensor]) -> list[Tensor]:
        if len(student) != len(self.convs):
            raise ValueError(f"{self.loss}: built for {len(self.convs)} feature level(s) "
                             f"(student_channels/teacher_channels) but got {len(student)}")
        for level, (s, (expected, _)) in enumerate(zip(student, self.channels)):
            if s.dim() != 4 or s.shape[1] != expected:
                raise ValueError(f"{self.loss}: student features at level {level} should have {expected} "
                                 f"channels (student_channels), got shape {tuple(s.shape)}")
        return [conv(s) for conv, s in zip(self.convs, student)]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
