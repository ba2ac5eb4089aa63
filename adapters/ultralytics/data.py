"""A deterministic, built-in detection dataset in YOLO format: no download, any size.

Each image holds a few objects of ``len(SHAPES)`` classes (filled geometric shapes in random colours,
sizes from small to large) over a cluttered background (noise, stray lines and outline distractors), so
that a small model has room to improve and a better teacher has something to teach.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")


def _draw(img: np.ndarray, cls: int, cx: float, cy: float, r: float, color: tuple[int, int, int]) -> None:
    c, rr = (int(cx), int(cy)), int(r)
    if SHAPES[cls] == "circle":
        cv2.circle(img, c, rr, color, -1, cv2.LINE_AA)
    elif SHAPES[cls] == "square":
        cv2.rectangle(img, (c[0] - rr, c[1] - rr), (c[0] + rr, c[1] + rr), color, -1)
    elif SHAPES[cls] == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    elif SHAPES[cls] == "cross":
        w = max(1, rr // 3)
        cv2.rectangle(img, (c[0] - rr, c[1] - w), (c[0] + rr, c[1] + w), color, -1)
        cv2.rectangle(img, (c[0] - w, c[1] - rr), (c[0] + w, c[1] + rr), color, -1)
    elif SHAPES[cls] == "diamond":
        pts = np.array([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    else:  # ring
        cv2.circle(img, c, rr, color, max(1, rr // 3), cv2.LINE_AA)


Label = tuple[int, float, float, float, float]  # class, x, y, w, h (normalised)


def _image(rng: np.random.Generator, size: int, max_objects: int) -> tuple[np.ndarray, list[Label]]:
    base = rng.integers(40, 200, size=3)
    img = np.clip(base + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 7)):  # clutter: stray lines and outlines that are not objects
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color, int(rng.integers(1, 3)))
        else:
            cv2.rectangle(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color, 1)
    labels = []
    for _ in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(len(SHAPES)))
        r = float(size * rng.choice([rng.uniform(0.03, 0.06), rng.uniform(0.06, 0.16)], p=[0.4, 0.6]))
        cx, cy = rng.uniform(r, size - r, 2)
        color = tuple(int(v) for v in (rng.integers(0, 256, 3)))
        _draw(img, cls, cx, cy, r, color)
        labels.append((cls, cx / size, cy / size, 2 * r / size, 2 * r / size))
    return img, labels


def make_shapes_dataset(root: str | Path, train: int = 256, val: int = 64, test: int = 0, imgsz: int = 128,
                        max_objects: int = 6, seed: int = 0) -> Path:
    """Write the dataset under ``root`` (``images/{split}``, ``labels/{split}``) and return its data yaml.

    Deterministic for a given ``seed`` and sizes; an existing complete dataset is reused as it is.
    """
    root = Path(root).resolve()
    yaml_path = root / "data.yaml"
    splits = {"train": train, "val": val, "test": test}
    stamp = root / f".complete-{train}-{val}-{test}-{imgsz}-{max_objects}-{seed}"
    if stamp.exists() and yaml_path.exists():
        return yaml_path
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        if not count:
            continue
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, labels = _image(rng, imgsz, max_objects)
            cv2.imwrite(str(root / "images" / split / f"{i:05d}.png"), img)
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    lines = [f"path: {root}", "train: images/train", "val: images/val"]
    if test:
        lines.append("test: images/test")
    lines.append("names:")
    lines += [f"  {i}: {name}" for i, name in enumerate(SHAPES)]
    yaml_path.write_text("\n".join(lines) + "\n")
    stamp.touch()
    return yaml_path
