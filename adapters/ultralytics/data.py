"""A deterministic, built-in detection dataset in YOLO format: no download, any size.

Each image holds objects of ``len(SHAPES)`` classes (geometric shapes in random colours) over a cluttered
background (noise, stray lines and outline distractors), so that a small model has room to improve and a
better teacher has something to teach. Two kinds (:data:`KINDS`):

- ``shapes``: 1–6 objects per image, sizes from small to large, classes equally likely;
- ``dense``: 6–16 small objects per image (radius 4–8 % of the image, 10–20 pixels across at imgsz 128; a
  step towards aerial datasets such as VisDrone), placed with little overlap, classes imbalanced (from 35 %
  of the objects down to 5 %).

Labels for every ultralytics task (``task``): ``detect`` boxes; ``segment`` each shape's outline as a polygon;
``pose`` four keypoints per object (its top, right, bottom and left extremes); ``obb`` the box's four corners
(angle 0: the shapes are drawn upright). The images are the same for every task.
"""

from __future__ import annotations

import shutil
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


KINDS = {
    # objects per image, radius ranges (fraction of the image) with their probabilities, class probabilities
    "shapes": {"objects": (1, 6), "radii": (((0.03, 0.06), 0.4), ((0.06, 0.16), 0.6)), "classes": None},
    "dense": {"objects": (6, 16), "radii": (((0.04, 0.06), 0.5), ((0.06, 0.08), 0.5)),
              "classes": (0.35, 0.25, 0.15, 0.12, 0.08, 0.05)},
}


def _radius(rng: np.random.Generator, size: int, radii) -> float:
    ranges, probs = zip(*radii)
    low, high = ranges[int(rng.choice(len(ranges), p=probs))]
    return float(size * rng.uniform(low, high))


def _image(rng: np.random.Generator, size: int, max_objects: int, kind: str = "shapes"
           ) -> tuple[np.ndarray, list[Label]]:
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
    spec = KINDS[kind]
    low = spec["objects"][0]
    placed: list[tuple[float, float, float]] = []
    for _ in range(rng.integers(low, max(low, max_objects) + 1)):
        cls = int(rng.choice(len(SHAPES), p=spec["classes"])) if spec["classes"] else int(rng.integers(len(SHAPES)))
        if kind == "shapes":  # the original draw order, so that this kind's images stay as they were
            r = float(size * rng.choice([rng.uniform(0.03, 0.06), rng.uniform(0.06, 0.16)], p=[0.4, 0.6]))
        else:
            r = _radius(rng, size, spec["radii"])
        cx, cy = rng.uniform(r, size - r, 2)
        if kind == "dense":  # little overlap: a few tries for a free spot, else skip the object
            for _ in range(10):
                if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q) ** 2 for x, y, q in placed):
                    break
                cx, cy = rng.uniform(r, size - r, 2)
            else:
                continue
            placed.append((cx, cy, r))
        color = tuple(int(v) for v in (rng.integers(0, 256, 3)))
        _draw(img, cls, cx, cy, r, color)
        labels.append((cls, cx / size, cy / size, 2 * r / size, 2 * r / size))
    return img, labels


TASKS = ("detect", "segment", "pose", "obb")
KEYPOINTS = 4  # pose: top, right, bottom, left
FLIP_IDX = (0, 3, 2, 1)  # a horizontal flip swaps right and left


def _outline(cls: int, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """The polygon of a drawn shape (pixels): its vertices, or 16 points on the circle for round shapes."""
    name = SHAPES[cls]
    if name == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if name == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if name == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if name == "cross":
        w = max(1, int(r) // 3)
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
                (cx - r, cy - w), (cx - w, cy - w)]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    return [(cx + r * float(np.cos(a)), cy + r * float(np.sin(a))) for a in angles]


def label_line(label: Label, task: str, size: int) -> str:
    """One YOLO label line of ``task`` for an object drawn at ``label`` (class, x, y, w, h normalised)."""
    c, x, y, w, h = label
    box = f"{x:.6f} {y:.6f} {w:.6f} {h:.6f}"
    if task == "detect":
        return f"{c} {box}"
    if task == "segment":
        points = np.clip(np.array(_outline(c, x * size, y * size, w * size / 2)) / size, 0, 1)
        return f"{c} " + " ".join(f"{px:.6f} {py:.6f}" for px, py in points)
    if task == "pose":
        extremes = ((x, y - h / 2), (x + w / 2, y), (x, y + h / 2), (x - w / 2, y))
        return f"{c} {box} " + " ".join(f"{px:.6f} {py:.6f} 2" for px, py in extremes)
    corners = ((x - w / 2, y - h / 2), (x + w / 2, y - h / 2), (x + w / 2, y + h / 2), (x - w / 2, y + h / 2))
    return f"{c} " + " ".join(f"{px:.6f} {py:.6f}" for px, py in corners)


def make_shapes_dataset(root: str | Path, train: int = 256, val: int = 64, test: int = 0, imgsz: int = 128,
                        max_objects: int | None = None, seed: int = 0, kind: str = "shapes",
                        task: str = "detect") -> Path:
    """Write the dataset under ``root`` (``images/{split}``, ``labels/{split}``) and return its data yaml.

    ``kind``: ``"shapes"`` or ``"dense"`` (:data:`KINDS`); ``max_objects`` overrides the kind's maximum
    objects per image; ``task``: the label format (:data:`TASKS`, see the module docstring). Deterministic
    for a given ``seed``, kind and sizes; an existing complete dataset is reused as it is.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {tuple(KINDS)}")
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {TASKS}")
    max_objects = KINDS[kind]["objects"][1] if max_objects is None else int(max_objects)
    root = Path(root).resolve()
    yaml_path = root / "data.yaml"
    splits = {"train": train, "val": val, "test": test}
    suffix = "" if kind == "shapes" else f"-{kind}"
    suffix += "" if task == "detect" else f"-{task}"
    stamp = root / f".complete-{train}-{val}-{test}-{imgsz}-{max_objects}-{seed}{suffix}"
    if stamp.exists() and yaml_path.exists():
        return yaml_path
    stale = list(root.glob(".complete-*"))  # a dataset of another task, size or seed was written here
    if stale:  # start afresh: its extra images, labels and ultralytics' label caches must not remain
        for folder in ("images", "labels"):
            shutil.rmtree(root / folder, ignore_errors=True)
        for stamp_path in stale:
            stamp_path.unlink()
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        if not count:
            continue
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, labels = _image(rng, imgsz, max_objects, kind)
            cv2.imwrite(str(root / "images" / split / f"{i:05d}.png"), img)
            lines = [label_line(label, task, imgsz) for label in labels]
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    lines = [f"path: {root}", "train: images/train", "val: images/val"]
    if test:
        lines.append("test: images/test")
    lines.append("names:")
    lines += [f"  {i}: {name}" for i, name in enumerate(SHAPES)]
    if task == "pose":
        lines += [f"kpt_shape: [{KEYPOINTS}, 3]", f"flip_idx: {list(FLIP_IDX)}"]
    yaml_path.write_text("\n".join(lines) + "\n")
    stamp.touch()
    return yaml_path
