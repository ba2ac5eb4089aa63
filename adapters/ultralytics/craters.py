"""A real-image target: craters on one annotated orbital photograph shipped inside a package on the package
index (``pycda`` 0.1.16, MIT: ``pycda/sample_imgs/holdout_tile.pgm``, 1700 x 1700 greyscale, and
``holdout_tile_labels.csv``, 409 hand-labelled craters as centre ``long, lat`` and ``diameter`` in pixels).

No package with many annotated photographs ships them on the index (``docs/experiments/pretrained-starts.md``
lists what was searched), so the photograph is cut into tiles. The three splits are three horizontal bands of
the photograph (rows 0–60 %, 60–80 %, 80–100 %: train, val, test) with :data:`GAP` pixels left out between
two bands, tiles overlapping only within their band, so that no crater is seen by two splits. A crater is
labelled in a tile when its centre lies inside the tile and at least half of its box does; its box is clipped
to the tile. One class, ``crater``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from kdloss.adapters.ultralytics.dataset_folder import reuse_or_clear

PACKAGE = "pycda==0.1.16"
MEMBERS = ("pycda-0.1.16/pycda/sample_imgs/holdout_tile.pgm", "pycda-0.1.16/pycda/sample_imgs/holdout_tile_labels.csv")
BANDS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}  # fractions of the photograph's height
GAP = 80  # pixels left out between two bands: more than the largest crater (78.5 px), so none reaches two splits
MIN_INSIDE = 0.5  # the fraction of a crater's box that must lie in a tile for it to be labelled there


def fetch_sample(cache: str | Path) -> Path:
    """The folder holding pycda's photograph and labels: taken from its source archive, which
    ``pip download`` brings from the package index into ``cache`` (once; nothing is installed)."""
    cache = Path(cache).resolve()
    folder = cache / "pycda-sample"
    if all((folder / Path(member).name).is_file() for member in MEMBERS):
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    archives = sorted(cache.glob("pycda-0.1.16.tar.gz"))
    if not archives:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
                   str(cache), PACKAGE]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = sorted(cache.glob("pycda-0.1.16.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(f"could not download {PACKAGE} from the package index: {result.stderr.strip()[-500:]}")
    folder.mkdir(exist_ok=True)
    with tarfile.open(archives[0]) as archive:
        for member in MEMBERS:
            source = archive.extractfile(member)
            if source is None:
                raise RuntimeError(f"{archives[0]} has no {member}")
            (folder / Path(member).name).write_bytes(source.read())
    return folder


def read_craters(labels_csv: str | Path) -> np.ndarray:
    """``(K, 3)`` float array of crater centres and diameters ``(x, y, d)`` in pixels of the photograph."""
    with open(labels_csv) as f:
        rows = [(float(r["long"]), float(r["lat"]), float(r["diameter"])) for r in csv.DictReader(f)]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def tile_labels(craters: np.ndarray, x0: int, y0: int, tile: int) -> list[tuple[float, float, float, float]]:
    """YOLO boxes ``(x, y, w, h)`` normalised to the tile at ``(x0, y0)`` of side ``tile``, for the craters
    whose centre lies in it and whose box lies at least :data:`MIN_INSIDE` in it, clipped to it."""
    boxes = []
    for x, y, d in craters:
        if not (x0 <= x < x0 + tile and y0 <= y < y0 + tile):
            continue
        left, top, right, bottom = x - d / 2, y - d / 2, x + d / 2, y + d / 2
        cl, ct = max(left, x0), max(top, y0)
        cr, cb = min(right, x0 + tile), min(bottom, y0 + tile)
        if (cr - cl) * (cb - ct) < MIN_INSIDE * d * d or cr - cl < 2 or cb - ct < 2:
            continue
        boxes.append((((cl + cr) / 2 - x0) / tile, ((ct + cb) / 2 - y0) / tile, (cr - cl) / tile, (cb - ct) / tile))
    return boxes


def make_craters_dataset(root: str | Path, source: str | Path | None = None, tile: int = 128,
                         stride: int = 64) -> Path:
    """Write the tiled crater dataset under ``root`` (YOLO format) and return its data yaml.

    ``source``: a folder with ``holdout_tile.pgm`` and ``holdout_tile_labels.csv``; by default pycda's, fetched
    with :func:`fetch_sample` into ``root/cache``. Tiles of ``tile`` pixels every ``stride`` pixels inside each
    band (:data:`BANDS`). Deterministic; an existing complete dataset is reused as it is.
    """
    root = Path(root).resolve()
    yaml_path = root / "data.yaml"
    stamp = root / f".complete-craters-{tile}-{stride}-gap{GAP}"
    if reuse_or_clear(root, "craters", stamp):
        return yaml_path
    source = Path(source) if source is not None else fetch_sample(root / "cache")
    image = cv2.imread(str(source / "holdout_tile.pgm"), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{source / 'holdout_tile.pgm'}: not a readable image")
    craters = read_craters(source / "holdout_tile_labels.csv")
    height, width = image.shape
    for split, (start, stop) in BANDS.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        top = round(start * height) + (GAP // 2 if start > 0 else 0)
        bottom = round(stop * height) - (GAP // 2 if stop < 1 else 0)
        count = 0
        for y0 in range(top, bottom - tile + 1, stride):
            for x0 in range(0, width - tile + 1, stride):
                crop = cv2.cvtColor(image[y0:y0 + tile, x0:x0 + tile], cv2.COLOR_GRAY2BGR)
                name = f"{split}_{y0:04d}_{x0:04d}"
                cv2.imwrite(str(root / "images" / split / f"{name}.png"), crop)
                lines = [f"0 {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for x, y, w, h in tile_labels(craters, x0, y0, tile)]
                (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
                count += 1
        if not count:
            raise ValueError(f"the {split} band ({bottom - top} rows) is smaller than one tile of {tile} pixels")
    yaml_path.write_text(f"path: {root}\ntrain: images/train\nval: images/val\ntest: images/test\n"
                         "names:\n  0: crater\n")
    stamp.touch()
    return yaml_path


if __name__ == "__main__":
    print(make_craters_dataset(sys.argv[1] if len(sys.argv) > 1 else "runs/evidence/craters"))
