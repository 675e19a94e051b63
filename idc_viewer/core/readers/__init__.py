"""Opening slide files: :func:`open_slide` picks the reader for a path.

Every format OpenSlide reads (:mod:`.openslide_reader`) and plain PNG/JPEG/TIFF images
(:mod:`.plain`); :mod:`.formats` holds the one list of slide file endings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import openslide

from idc_viewer.core.errors import one_line
from idc_viewer.core.readers.formats import OPENSLIDE_SUFFIXES, PLAIN_FORMATS
from idc_viewer.core.readers.openslide_reader import open_openslide
from idc_viewer.core.readers.plain import open_plain_image
from idc_viewer.core.scale import check_user_mpp
from idc_viewer.core.slide import Slide, SlideError

# tifffile reports damaged files through logging; without a handler Python prints those records
# on stderr as a second line beside our one-line error (the SlideError says it all).
logging.getLogger("tifffile").addHandler(logging.NullHandler())

__all__ = ["open_slide"]


def _check_readable(p: Path, name: str) -> None:
    """Raise :class:`SlideError` unless ``p`` is a non-empty regular file we may read."""
    try:
        if not p.exists():
            raise SlideError(f"cannot open {name}: file not found")
        if p.is_dir():
            raise SlideError(f"cannot open {name}: is a folder, not a slide file")
        if not p.is_file():  # a FIFO or device would block or never end
            raise SlideError(f"cannot open {name}: not a regular file")
        if p.stat().st_size == 0:
            raise SlideError(f"cannot open {name}: the file is empty")
        with open(p, "rb") as fh:  # fail early and clearly on permission problems
            fh.read(1)
    except OSError as exc:
        raise SlideError(f"cannot open {name}: {exc.strerror or one_line(exc, 200)}") from exc


def open_slide(path: str | os.PathLike[str], mpp: float | None = None) -> Slide:
    """Open a whole-slide image or plain image.

    Parameters
    ----------
    path : str or os.PathLike
        Any format OpenSlide reads, or a PNG/JPEG/TIFF image.
    mpp : float, optional
        µm per level-0 pixel; overrides the file's value (``mpp_source == "user"``).

    Returns
    -------
    Slide
        The opened slide; close it when done.

    Raises
    ------
    SlideError
        Missing, empty, truncated, corrupt or unsupported file, or an invalid ``mpp``;
        ``str(exc)`` is one line naming the file and the reason.
    """
    p = Path(path)
    name = p.name or str(p)
    if mpp is not None:
        check_user_mpp(mpp)
    _check_readable(p, name)
    try:
        vendor = openslide.OpenSlide.detect_format(str(p))
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"cannot open {name}: {one_line(exc, 200)}") from exc
    if vendor is not None:
        return open_openslide(str(p), name, vendor, mpp)
    suffix = p.suffix.lower()
    fmt = PLAIN_FORMATS.get(suffix)
    if fmt is None and suffix in OPENSLIDE_SUFFIXES:
        raise SlideError(
            f"cannot open {name}: not a readable {suffix} slide"
            " (damaged, truncated or a different kind of file)"
        )
    if fmt is None:
        raise SlideError(
            f"cannot open {name}: unsupported format (not a whole-slide image, PNG, JPEG or TIFF)"
        )
    return open_plain_image(p, fmt, mpp)
