"""A built-in pretraining corpus, standing in for COCO or Objects365 offline.

The targets (:mod:`kdloss.adapters.ultralytics.data`: ``shapes``, ``dense``) have six upright shape classes
over flat, noisy backgrounds. The corpus is what a model is pretrained on before it is fine-tuned on a target,
as ultralytics users start from ``yolov8n.pt``:

- **other classes, more of them**: the 16 classes of :data:`CORPUS_CLASSES`, none of them a target class
  (stars, polygons, ellipses, arrows, letters, frames, ...), so the fine-tune learns a new class head, as a
  COCO-pretrained model does on a user's own classes;
- **rotated** by any angle (the targets are upright), boxes tight around the rotated outline;
- **varied sizes**: radius 2–22 % of the image, 1–12 objects per image, overlap allowed (an object that later
  ones hide by more than half is not labelled; a box bounds the visible part);
- **varied backgrounds**: flat with noise (as the targets), linear gradients, stripes, checkerboards and
  blurred colour blobs, with the targets' clutter (stray lines and outlines) on top.

Every object is a filled polygon (round shapes as 24 points), so its box is exact after rotation, clipping
and occlusion.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kdloss.adapters.ultralytics.dataset_folder import reuse_or_clear

CORPUS_CLASSES = ("star", "hexagon", "pentagon", "octagon", "ellipse", "half_disk", "crescent", "arrow",
                  "t_shape", "l_shape", "trapezoid", "frame", "bar", "heart", "chevron", "hourglass")
BACKGROUNDS = ("flat", "gradient", "stripes", "checker", "blobs")
MIN_VISIBLE = 0.5  # the fraction of an object's pixels that must stay visible for it to be labelled


def _circle(n: int = 24, start: float = 0.0, stop: float = 2 * np.pi) -> np.ndarray:
    angles = np.linspace(start, stop, n, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _regular(k: int) -> np.ndarray:
    return _circle(k, -np.pi / 2, 3 * np.pi / 2)


def _unit_outline(name: str) -> np.ndarray:
    """The outline of class ``name`` as a (P, 2) polygon about the unit square [-1, 1]^2 (y down; the heart's
    lobes reach 1.3): the drawn radius scales it."""
    if name == "star":
        outer, inner = _regular(5), 0.45 * _circle(5, -np.pi / 2 + np.pi / 5, 3 * np.pi / 2 + np.pi / 5)
        return np.stack([outer, inner], 1).reshape(-1, 2)
    if name in ("hexagon", "pentagon", "octagon"):
        return _regular({"hexagon": 6, "pentagon": 5, "octagon": 8}[name])
    if name == "ellipse":
        return _circle() * [1.0, 0.5]
    if name == "half_disk":
        return _circle(16, np.pi, 2 * np.pi + 1e-9)[::-1] * [1, 1] + [0, 0.5]
    if name == "crescent":
        outer = _circle(16, np.pi / 2, 3 * np.pi / 2 + 1e-9)
        inner = _circle(16, np.pi / 2, 3 * np.pi / 2 + 1e-9)[::-1] * [0.45, 1.0]
        return np.concatenate([outer, inner])
    if name == "arrow":
        return np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.8], [1, 0], [0.2, 0.8], [0.2, 0.3], [-1, 0.3]])
    if name == "t_shape":
        return np.array([[-1, -1], [1, -1], [1, -0.5], [0.25, -0.5], [0.25, 1], [-0.25, 1], [-0.25, -0.5],
                         [-1, -0.5]])
    if name == "l_shape":
        return np.array([[-0.8, -1], [-0.3, -1], [-0.3, 0.5], [0.8, 0.5], [0.8, 1], [-0.8, 1]])
    if name == "trapezoid":
        return np.array([[-0.5, -0.6], [0.5, -0.6], [1, 0.6], [-1, 0.6]])
    if name == "frame":  # a square ring as one polygon: outer square, a slit, inner square backwards
        outer = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -0.02]])
        inner = np.array([[-0.55, -0.02], [-0.55, 0.55], [0.55, 0.55], [0.55, -0.55], [-0.55, -0.55],
                          [-0.55, -0.04], [-1, -0.04]])
        return np.concatenate([outer, inner])
    if name == "bar":
        return np.array([[-1, -0.2], [1, -0.2], [1, 0.2], [-1, 0.2]])
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x / 17, (y + 2.5) / 15], 1)
    if name == "chevron":
        return np.array([[-1, -0.8], [-0.4, -0.8], [0.6, 0], [-0.4, 0.8], [-1, 0.8], [0, 0]])
    if name == "hourglass":
        return np.array([[-0.8, -1], [0.8, -1], [0.1, 0], [0.8, 1], [-0.8, 1], [-0.1, 0]])
    raise ValueError(f"no outline for {name!r}")


OUTLINES = {name: _unit_outline(name) for name in CORPUS_CLASSES}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    a, b = rng.integers(20, 235, 3).astype(np.float64), rng.integers(20, 235, 3).astype(np.float64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    if kind == "flat":
        img = np.broadcast_to(a, (size, size, 3)).copy()
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
        img = a * (1 - t) + b * t
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.25)
        t = (np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period) > 0)[..., None]
        img = np.where(t, a, 0.6 * a + 0.4 * b)
    elif kind == "checker":
        cells = int(rng.integers(3, 12))
        t = (((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 == 0)[..., None]
        img = np.where(t, a, 0.5 * a + 0.5 * b)
    else:  # blobs: low-frequency colour noise
        small = rng.integers(20, 235, (4, 4, 3)).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    img = img + rng.normal(0, rng.uniform(4, 20), (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    size = img.shape[0]
    for _ in range(rng.integers(0, 6)):  # stray lines and outlines that are not objects, as in the targets
        p1, p2 = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)))
        else:
            cv2.rectangle(img, p1, p2, color, 1)


def corpus_image(rng: np.random.Generator, size: int, max_objects: int = 12
                 ) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One corpus image, (size, size, 3) uint8 BGR, and its labels (class, x, y, w, h normalised to [0, 1])."""
    img = _background(rng, size)
    _clutter(rng, img)
    owner = np.full((size, size), -1, np.int32)  # which object each pixel shows (later objects occlude)
    drawn = []
    for i in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(len(CORPUS_CLASSES)))
        r = size * (rng.uniform(0.02, 0.07) if rng.random() < 0.4 else rng.uniform(0.07, 0.22))
        angle = rng.uniform(0, 2 * np.pi)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        center = rng.uniform(0.1 * size, 0.9 * size, 2)
        polygon = np.round(OUTLINES[CORPUS_CLASSES[cls]] @ rotation.T * r + center).astype(np.int32)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.fillPoly(img, [polygon], color, cv2.LINE_AA)
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [polygon], 1)
        owner[mask > 0] = i
        drawn.append((cls, i, int(mask.sum())))
    labels = []
    for cls, i, area in drawn:  # an object less than half visible is occluded: not labelled
        ys, xs = np.nonzero(owner == i)
        if area < 4 or xs.size < MIN_VISIBLE * area or np.ptp(xs) < 2 or np.ptp(ys) < 2:
            continue
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1  # the visible part's box
        labels.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    return img, labels


def make_corpus(root: str | Path, train: int = 4000, val: int = 200, imgsz: int = 128, seed: int = 0) -> Path:
    """Write the pretraining corpus under ``root`` (YOLO format, ``images/{train,val}``) and return its data yaml.

    Deterministic for a given seed and sizes; an existing complete corpus is reused as it is. The train and val
    images come from one random stream, so the two splits never share an image.
    """
    root = Path(root).resolve()
    yaml_path = root / "data.yaml"
    stamp = root / f".complete-corpus-{train}-{val}-{imgsz}-{seed}"
    if reuse_or_clear(root, "corpus", stamp):
        return yaml_path
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, labels = corpus_image(rng, imgsz)
            cv2.imwrite(str(root / "images" / split / f"{i:05d}.png"), img)
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    lines = [f"path: {root}", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(CORPUS_CLASSES)]
    yaml_path.write_text("\n".join(lines) + "\n")
    stamp.touch()
    return yaml_path
