"""Several named distillation losses, weighted and scheduled, as one total plus loggable parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kdloss.nn.base import DistillLoss
from kdloss.schedules import Schedule


class DistillationLoss(nn.Module):
    """Weighted, scheduled sum of named kdloss losses.

    Example::

        criterion = DistillationLoss(
            {"cwd": CWD(tau=1.0), "bckd": BCKD()},
            weights={"cwd": 1.0, "bckd": 1.0},
            schedules={"bckd": Schedule("cosine", final_ratio=0.1)},
        )
        total, parts = criterion({"cwd": (s_feats, t_feats), "bckd": (s_out, t_out)}, progress=epoch / epochs)

    ``inputs`` maps each loss name to its positional arguments (a tuple) or keyword arguments (a dict).
    Returns ``total = Σ_name weight[name] · schedule[name](progress) · loss[name]`` (a scalar tensor that
    back-propagates) and ``parts``: detached scalars keyed ``name`` (or ``name_part`` for losses with
    several terms, e.g. ``bckd_cls``, ``bckd_box``), each already weighted and scheduled.
    """

    def __init__(self, losses: Mapping[str, DistillLoss], weights: Mapping[str, float] | None = None,
                 schedules: Mapping[str, Schedule] | None = None):
        super().__init__()
        if not losses:
            raise ValueError("DistillationLoss: give at least one loss")
        weights, schedules = dict(weights or {}), dict(schedules or {})
        for what, mapping in (("weights", weights), ("schedules", schedules)):
            unknown = set(mapping) - set(losses)
            if unknown:
                raise ValueError(f"DistillationLoss: {what} name unknown loss(es) {sorted(unknown)}; "
                                 f"losses are {sorted(losses)}")
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: float(weights.get(name, 1.0)) for name in losses}
        self.schedules = {name: schedules.get(name, Schedule("constant")) for name in losses}

    def factors(self, progress: float) -> dict[str, float]:
        """The multiplier of each loss at ``progress``: weight times schedule."""
        return {name: self.weights[name] * self.schedules[name](progress) for name in self.losses}

    def part_keys(self) -> list[str]:
        """The keys of ``parts`` in order: ``name`` for single-term losses, ``name_part`` otherwise."""
        return [key for name in self.losses for key in self._keys(name)]

    def _keys(self, name: str) -> list[str]:
        part_names = self.losses[name].part_names
        return [name] if len(part_names) == 1 else [f"{name}_{part}" for part in part_names]

    def forward(self, inputs: Mapping[str, Any], progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        missing, unknown = set(self.losses) - set(inputs), set(inputs) - set(self.losses)
        if missing or unknown:
            raise ValueError(f"DistillationLoss: inputs must name exactly the losses {sorted(self.losses)}; "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        values: list[Tensor] = []
        logged: dict[str, Tensor] = {}
        for name, factor in self.factors(progress).items():
            args = inputs[name]
            loss = self.losses[name]
            terms = loss.parts(**args) if isinstance(args, Mapping) else loss.parts(*args)
            for key, part in zip(self._keys(name), loss.part_names):
                value = terms[part] * factor
                values.append(value)
                logged[key] = value.detach()
        return torch.stack(values).sum(), logged
