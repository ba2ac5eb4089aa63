"""The pretraining corpus (other classes than the targets, exact boxes) and the tiled real-image target."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kdloss.adapters.ultralytics.corpus import CORPUS_CLASSES, OUTLINES, corpus_image, make_corpus
from kdloss.adapters.ultralytics.craters import BANDS, make_craters_dataset, read_craters, tile_labels
from kdloss.adapters.ultralytics.data import SHAPES


def test_corpus_classes_are_other_and_more_than_the_targets():
    assert not set(CORPUS_CLASSES) & set(SHAPES) and len(CORPUS_CLASSES) > len(SHAPES)
    for name, outline in OUTLINES.items():
        assert outline.ndim == 2 and outline.shape[1] == 2 and len(outline) >= 3, name
        assert np.abs(outline).max() <= 1.35, name  # about the unit square (the heart's lobes reach 1.3)


def test_corpus_boxes_lie_in_the_image_and_are_not_degenerate():
    """Boxes are inside the image, at least 2 pixels wide and high, of a corpus class."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        img, labels = corpus_image(rng, 96, max_objects=12)
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        for c, x, y, w, h in labels:
            assert 0 <= c < len(CORPUS_CLASSES)
            assert 0 <= x - w / 2 and x + w / 2 <= 1 and 0 <= y - h / 2 and y + h / 2 <= 1
            assert w * 96 >= 2 and h * 96 >= 2


def test_corpus_is_deterministic_and_reused(tmp_path):
    a = make_corpus(tmp_path / "a", train=6, val=2, imgsz=64, seed=1)
    b = make_corpus(tmp_path / "b", train=6, val=2, imgsz=64, seed=1)
    for split, count in (("train", 6), ("val", 2)):
        files = sorted((a.parent / "labels" / split).glob("*.txt"))
        assert len(files) == count
        for f in files:
            assert f.read_text() == (b.parent / "labels" / split / f.name).read_text()
    assert f"  {len(CORPUS_CLASSES) - 1}: {CORPUS_CLASSES[-1]}" in a.read_text()
    first = (a.parent / "labels" / "train" / "00000.txt").stat().st_mtime_ns
    make_corpus(tmp_path / "a", train=6, val=2, imgsz=64, seed=1)
    assert (a.parent / "labels" / "train" / "00000.txt").stat().st_mtime_ns == first


def test_tile_labels_keep_craters_centred_and_mostly_inside_clipped():
    craters = np.array([[10.0, 10.0, 8.0],   # inside
                        [1.0, 20.0, 8.0],    # centre inside, box 5/8 inside: kept, clipped at x = 0
                        [30.0, 5.0, 16.0],   # centre inside, 10 x 13 of its 16 x 16 inside (> half): kept
                        [31.0, 31.0, 10.0],  # centre inside, a quarter inside: dropped
                        [40.0, 10.0, 4.0]])  # centre outside: dropped
    boxes = tile_labels(craters, 0, 0, 32)
    np.testing.assert_allclose(boxes[0], (10 / 32, 10 / 32, 8 / 32, 8 / 32))
    np.testing.assert_allclose(boxes[1], (2.5 / 32, 20 / 32, 5 / 32, 8 / 32))
    np.testing.assert_allclose(boxes[2], (27 / 32, 6.5 / 32, 10 / 32, 13 / 32))
    assert len(boxes) == 3


@pytest.fixture
def photograph(tmp_path):
    """A stand-in for pycda's photograph and its labels file, in the same formats (PGM; long, lat, diameter)."""
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (900, 300), dtype=np.uint8)
    rows = []
    for _ in range(150):
        x, y, d = rng.uniform(0, 300), rng.uniform(0, 900), rng.uniform(4, 20)
        cv2.circle(image, (int(x), int(y)), int(d / 2), 20, -1)
        rows.append(f"{x:.2f},{y:.2f},{d:.3f}")
    cv2.imwrite(str(tmp_path / "holdout_tile.pgm"), image)
    (tmp_path / "holdout_tile_labels.csv").write_text("long,lat,diameter\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_craters_dataset_keeps_the_splits_apart(photograph, tmp_path):
    yaml = make_craters_dataset(tmp_path / "craters", source=photograph, tile=64, stride=32)
    root = yaml.parent
    craters = read_craters(photograph / "holdout_tile_labels.csv")
    for split, (start, stop) in BANDS.items():
        images = sorted((root / "images" / split).glob("*.png"))
        assert images
        for image in images:
            _, y0, x0 = image.stem.split("_")
            y0, x0 = int(y0), int(x0)
            assert start * 900 <= y0 and y0 + 64 <= stop * 900  # inside its own band
            assert cv2.imread(str(image)).shape == (64, 64, 3)
            text = (root / "labels" / split / f"{image.stem}.txt").read_text()
            expected = tile_labels(craters, x0, y0, 64)
            assert len(text.split("\n")) - 1 == len(expected)
    assert "test: images/test" in yaml.read_text() and "0: crater" in yaml.read_text()


def test_no_crater_reaches_two_splits(photograph, tmp_path):
    """Every crater's box meets the tiles of one split at most: the bands are GAP pixels apart."""
    from kdloss.adapters.ultralytics.craters import GAP

    root = make_craters_dataset(tmp_path / "craters", source=photograph, tile=64, stride=32).parent
    rows = {split: [int(p.stem.split("_")[1]) for p in (root / "images" / split).glob("*.png")] for split in BANDS}
    spans = {split: (min(ys), max(ys) + 64) for split, ys in rows.items()}
    assert spans["train"][1] <= spans["val"][0] - GAP and spans["val"][1] <= spans["test"][0] - GAP
    for x, y, d in read_craters(photograph / "holdout_tile_labels.csv"):
        met = [split for split, (top, bottom) in spans.items() if y + d / 2 > top and y - d / 2 < bottom]
        assert len(met) <= 1, (x, y, d, met)


def test_pretrain_bad_keys():
    from kdloss.adapters.ultralytics.pretrain import pretrain

    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\]"):
        pretrain(epoch=3)
    with pytest.raises(ValueError, match=r"images=0 must be a positive integer"):
        pretrain(images=0)


@pytest.mark.slow
def test_pretrain_trains_once_then_returns_the_finished_run(tmp_path):
    import torch

    from kdloss.adapters.ultralytics.pretrain import pretrain

    options = {"model": "yolov8n.yaml", "epochs": 1, "images": 8, "val_images": 2, "imgsz": 64, "batch": 4,
               "workers": 0, "project": str(tmp_path / "runs"), "corpus": str(tmp_path / "corpus")}
    best = pretrain(**options)
    assert best == tmp_path / "runs" / "yolov8n" / "weights" / "best.pt" and best.is_file()
    model = torch.load(best, map_location="cpu", weights_only=False)["model"]
    assert model.nc == len(CORPUS_CLASSES) and list(model.names.values()) == list(CORPUS_CLASSES)
    mtime = best.stat().st_mtime_ns
    assert pretrain(**options) == best and best.stat().st_mtime_ns == mtime  # finished: not trained again


def test_a_folder_of_images_kdloss_did_not_write_is_refused_not_deleted(photograph, tmp_path):
    for name, make in (("corpus", lambda root: make_corpus(root, train=2, val=1, imgsz=32)),
                       ("craters", lambda root: make_craters_dataset(root, source=photograph, tile=64, stride=32))):
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        (root / "images" / "mine.png").write_bytes(b"x")
        with pytest.raises(ValueError, match="holds images that kdloss did not write"):
            make(root)
        assert (root / "images" / "mine.png").exists()
