"""No network during training: ultralytics' font lookup without its download.

ultralytics' dataset check (and its plots) look for ``Arial.ttf`` and, when it is not in ultralytics' config
folder or matplotlib's font list, download it, even with ``YOLO_OFFLINE=1``. :func:`local_font` answers the
same question from this machine only: the font if it is here, else matplotlib's own DejaVu Sans (matplotlib
is an ultralytics dependency). Plots of non-Latin class names may then lack glyphs: put ``Arial.Unicode.ttf``
in ultralytics' config folder (``yolo settings``) for them.
"""

from __future__ import annotations

import os
from pathlib import Path

import ultralytics.data.utils
import ultralytics.utils.plotting
from ultralytics.utils import USER_CONFIG_DIR


def local_font(font: str = "Arial.ttf") -> Path | str:
    """``font``'s file on this machine, or matplotlib's DejaVu Sans; never a download."""
    from matplotlib import font_manager

    file = USER_CONFIG_DIR / Path(font).name
    if file.exists():
        return file
    matches = [f.fname for f in font_manager.fontManager.ttflist if font in f.fname and os.path.exists(f.fname)]
    if matches:
        return matches[0]
    return font_manager.findfont("DejaVu Sans")


def use_local_fonts() -> None:
    """Point ultralytics' font lookups (dataset check, plots) at :func:`local_font`."""
    ultralytics.data.utils.check_font = local_font
    ultralytics.utils.plotting.check_font = local_font
