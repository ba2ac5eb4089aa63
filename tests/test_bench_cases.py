"""benchmarks/cases.py: every case key builds its case, and the case names its key back (the memory probe rebuilds
a case from that key in a subprocess, so a wrong one would measure another case's memory)."""

from __future__ import annotations

from benchmarks.cases import IMPLS, MGD_PARTS, build_case, case_keys, case_level


def test_every_case_names_its_own_key():
    keys = case_keys(("cwd", "mgd", "mimic"))
    assert ("mgd", "convs") in keys and ("mgd", "loss") in keys and ("mgd", "all") in keys
    for loss, level in keys:
        case = build_case(loss, level, 1, "cpu")
        assert (case.loss, case_level(case)) == (loss, level)
        assert set(case.run) == set(IMPLS)


def test_mgd_parts_split_the_loss_from_its_convs():
    convs = build_case("mgd", "convs", 1, "cpu")
    assert len({id(fn) for fn in convs.run.values()}) == 1  # the same convs for every implementation
    loss = build_case("mgd", "loss", 1, "cpu")
    value = loss.run["eager"]()
    value.backward()
    assert value.ndim == 0 and all(s.grad is not None for s in loss.student)
    assert MGD_PARTS == ("loss", "convs")
