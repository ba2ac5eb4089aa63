"""The built-in datasets: deterministic, the documented object counts, sizes and class balance."""

from __future__ import annotations

from collections import Counter

import pytest

from kdloss.adapters.ultralytics.data import KINDS, SHAPES, make_shapes_dataset


def labels_of(root, split="train"):
    rows = []
    for path in sorted((root / "labels" / split).glob("*.txt")):
        rows.append([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line])
    return rows


def test_dense_kind_small_many_imbalanced_objects(tmp_path):
    make_shapes_dataset(tmp_path / "d", train=40, val=2, imgsz=128, kind="dense")
    images = labels_of(tmp_path / "d")
    low, high = KINDS["dense"]["objects"]
    assert all(len(objects) <= high for objects in images)
    assert sum(len(objects) for objects in images) / len(images) > low  # few objects are dropped for overlap
    sizes = [obj[3] for objects in images for obj in objects]
    assert min(sizes) >= 2 * 0.04 - 1e-6 and max(sizes) <= 2 * 0.08 + 1e-6
    counts = Counter(int(obj[0]) for objects in images for obj in objects)
    assert set(counts) <= set(range(len(SHAPES)))
    assert counts[0] > 3 * counts[5]  # imbalanced: 35 % vs 5 % expected
    for objects in images:  # little overlap: no two centres inside each other's radius sum
        for i, a in enumerate(objects):
            for b in objects[i + 1:]:
                assert (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2 > ((a[3] + b[3]) / 2) ** 2 - 1e-9


def test_kinds_are_deterministic_and_differ(tmp_path):
    for kind in KINDS:
        make_shapes_dataset(tmp_path / f"{kind}-a", train=6, val=2, imgsz=64, kind=kind)
        make_shapes_dataset(tmp_path / f"{kind}-b", train=6, val=2, imgsz=64, kind=kind)
        assert labels_of(tmp_path / f"{kind}-a") == labels_of(tmp_path / f"{kind}-b")
        first = sorted((tmp_path / f"{kind}-a" / "images" / "train").iterdir())[0]
        assert first.read_bytes() == (tmp_path / f"{kind}-b" / "images" / "train" / first.name).read_bytes()
    assert labels_of(tmp_path / "shapes-a") != labels_of(tmp_path / "dense-a")
    shapes_counts = [len(objects) for objects in labels_of(tmp_path / "shapes-a")]
    assert max(shapes_counts) <= KINDS["shapes"]["objects"][1]


def test_unknown_kind_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"kind='aerial' is not one of \('shapes', 'dense'\)"):
        make_shapes_dataset(tmp_path, kind="aerial")
