"""The one list of file name endings taken as slides, and the formats behind them."""

from __future__ import annotations

__all__ = ["OPENSLIDE_SUFFIXES", "PLAIN_FORMATS", "SLIDE_SUFFIXES", "slide_file_filter"]

#: Endings of the whole-slide formats OpenSlide reads (besides tiled TIFF): when OpenSlide
#: does not recognise such a file, it is damaged.
OPENSLIDE_SUFFIXES = (
    ".svs",
    ".ndpi",
    ".vms",
    ".vmu",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
    ".dcm",
    ".czi",
)
#: Plain images (read without OpenSlide unless they are tiled), by ending, with their format.
PLAIN_FORMATS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
#: Every ending taken as a slide (a folder given to ``analyze``, the open dialog), lower case.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", *OPENSLIDE_SUFFIXES[1:], ".png", ".jpg", ".jpeg")


def slide_file_filter() -> str:
    """A file-dialog filter offering :data:`SLIDE_SUFFIXES`, then all files."""
    patterns = " ".join(f"*{suffix}" for suffix in SLIDE_SUFFIXES)
    return f"Slides ({patterns});;All files (*)"
