"""The adapter's loss table is the one place each loss is described; everything derived from it agrees with it,
and docs/usage.md documents every key that exists and no key that does not."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from kdloss import DistillLoss
from kdloss.adapters import cli
from kdloss.adapters.ultralytics import DistillConfig, distill
from kdloss.adapters.ultralytics import config as config_module
from kdloss.adapters.ultralytics.criterion import COLUMN_NAMES, build_criterion
from kdloss.adapters.ultralytics.losses import BY_NAME, LOSSES, Channels
from kdloss.adapters.ultralytics.preflight import KEY_OWNERS

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = Channels([4, 6], [8, 8], ([4, 4], [8, 8]))


def usage_key_table() -> set[str]:
    """The backticked keys in the first column of docs/usage.md's `kdloss distill` key table."""
    text = (ROOT / "docs" / "usage.md").read_text()
    table = text.split("## `kdloss distill` keys", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            keys |= set(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return keys


def test_every_key_is_documented_and_every_documented_key_exists():
    documented = usage_key_table()
    real = set(DistillConfig.keys()) | {"student", "teacher", "data"}
    assert real - documented == set(), f"undocumented in docs/usage.md: {sorted(real - documented)}"
    assert documented - real == set(), f"documented but no such key: {sorted(documented - real)}"


def test_the_config_choices_and_default_weights_come_from_the_table():
    for family, choices in (("feature", config_module.FEATURE_LOSSES), ("logit", config_module.LOGIT_LOSSES)):
        assert choices == (*[s.name for s in LOSSES if s.family == family], "none")
    for spec in LOSSES:
        if spec.family == "feature":
            weight = DistillConfig(feature_loss=spec.name).feature_loss_weight()
        else:
            weight = DistillConfig().logit_loss_weight(spec.name)
        assert weight == spec.default_weight, spec.name
    help_text = {f.name: f.metadata["help"] for f in fields(DistillConfig)}
    for spec in LOSSES:
        assert spec.name in help_text[f"{spec.family}_loss"]


def test_own_keys_are_config_keys_of_the_right_loss():
    assert set(KEY_OWNERS) == {key for spec in LOSSES for key in spec.keys}
    for key, owner in KEY_OWNERS.items():
        assert key in DistillConfig.keys() and owner in BY_NAME and key in BY_NAME[owner].keys


@pytest.mark.parametrize("spec", LOSSES, ids=[s.name for s in LOSSES])
def test_each_row_builds_its_loss_with_the_columns_it_declares(spec):
    loss = spec.build(DistillConfig(), CHANNELS)
    assert isinstance(loss, DistillLoss)
    parts = [spec.name if loss.part_names == ("loss",) else f"{spec.name}_{part}" for part in loss.part_names]
    assert set(parts) == {key for key in spec.columns if not key.startswith("o2o_")}
    for key, column in spec.columns.items():
        assert column.startswith("kd") and "loss" in column and len(column) <= 10, column
        if key.startswith("o2o_"):
            assert key.removeprefix("o2o_").split("_")[0] == spec.name


def test_columns_are_unique_and_every_loss_part_has_one():
    assert len(set(COLUMN_NAMES.values())) == len(COLUMN_NAMES)
    criterion = build_criterion(DistillConfig(feature_loss="cwd", logit_loss="bckd+ld+l1+l2"), [8], [8])
    assert set(criterion.part_keys()) <= set(COLUMN_NAMES)


def test_build_criterion_uses_the_rows():
    criterion = build_criterion(DistillConfig(feature_loss="cwd", logit_loss="bckd+ld", tau=2.0), [4, 6], [8, 8])
    assert set(criterion.losses) == {"cwd", "bckd", "ld"}
    assert criterion.losses["cwd"].tau == 2.0


def test_cli_help_and_distill_docstring_list_every_loss_and_key(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for spec in LOSSES:
        assert re.search(rf"^  {spec.name}\s+{spec.family}\s+", text, re.M), spec.name
    for key in DistillConfig.keys():
        assert f"{key}=" in text
        assert f"``{key}``" in distill.__doc__ or f"{key}:" in distill.__doc__  # feature_loss: and logit_loss: args


def test_the_loss_benchmark_covers_every_core_loss_of_the_table():
    """benchmarks.run's case list is the table's losses that the core implements (sl2 is the adapter's own)."""
    from benchmarks.run import LOSSES as BENCHMARKED

    core = {spec.name for spec in LOSSES if spec.name != "sl2"}
    assert set(BENCHMARKED) == core
