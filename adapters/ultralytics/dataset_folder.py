"""The folder a built-in dataset is written into: reused when complete, refused when it holds someone else's
images, cleared of a stale earlier version otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path


def reuse_or_clear(root: Path, kind: str, stamp: Path) -> bool:
    """``True`` if ``root`` holds the complete dataset ``stamp`` marks (reuse it as it is). Else clears what an
    earlier ``kind`` dataset left (its ``.complete-{kind}-*`` stamps, ``images/``, ``labels/``) and returns
    ``False``; a ``ValueError`` if ``root/images`` exists without any ``kind`` stamp (images kdloss did not
    write, which it would delete)."""
    if stamp.exists() and (root / "data.yaml").exists():
        return True
    stale = list(root.glob(f".complete-{kind}-*"))
    if (root / "images").exists() and not stale:
        raise ValueError(f"{root} holds images that kdloss did not write: give an empty or new folder for the "
                         f"{kind} dataset")
    for path in stale:
        path.unlink()
    for folder in ("images", "labels"):
        shutil.rmtree(root / folder, ignore_errors=True)
    return False
