"""Loss-weight schedules as plain functions of training progress ``p`` in ``[0, 1]``."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULE_KINDS = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Multiplier for a loss weight as training progresses.

    ``kind``:
        - ``"constant"``: 1.
        - ``"linear"``: ``1 + (final_ratio − 1)·p`` (1 → ``final_ratio``).
        - ``"cosine"``: ``final_ratio + (1 − final_ratio)·(1 + cos(π·p))/2`` (1 → ``final_ratio``).

    ``warmup`` (fraction of training in ``[0, 1)``): the multiplier ramps linearly from 0 to 1 over
    ``p < warmup``; the schedule then runs over the rest, on ``(p − warmup)/(1 − warmup)``.

    Progress is whatever the caller counts: ``epoch / epochs`` (per epoch) or ``iteration / total``
    (per iteration); :meth:`at` does the division.
    """

    kind: str = "constant"
    final_ratio: float = 0.1
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"Schedule: kind must be one of {SCHEDULE_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"Schedule: warmup must be in [0, 1), got {self.warmup}")
        if self.final_ratio < 0:
            raise ValueError(f"Schedule: final_ratio must be >= 0, got {self.final_ratio}")

    def __call__(self, progress: float) -> float:
        p = min(max(float(progress), 0.0), 1.0)
        if p < self.warmup:
            return p / self.warmup
        p = (p - self.warmup) / (1.0 - self.warmup)
        if self.kind == "linear":
            return 1.0 + (self.final_ratio - 1.0) * p
        if self.kind == "cosine":
            return self.final_ratio + (1.0 - self.final_ratio) * (1.0 + math.cos(math.pi * p)) / 2.0
        return 1.0

    def at(self, step: int, total_steps: int) -> float:
        """The multiplier at ``step`` of ``total_steps`` (iterations or epochs)."""
        if total_steps <= 0:
            raise ValueError(f"Schedule: total_steps must be > 0, got {total_steps}")
        return self(step / total_steps)
