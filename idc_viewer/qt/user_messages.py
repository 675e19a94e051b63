"""Reader errors in the user's words: what it means and what to try, in one line.

The raw reason (OpenSlide's, the decoder's) goes to the log; the dialog shows
:func:`explain_open_error`'s sentence, which names the file.
"""

from __future__ import annotations

#: (substring of the raw reason, lowercased) -> what it means and what to try.
_KNOWN: tuple[tuple[str, str], ...] = (
    (
        "couldn't get image flavor",
        "it is a DICOM file OpenSlide cannot read as a whole-slide image (not a WSI series it "
        "supports, or incomplete); open the slide's other .dcm files, or export it again as SVS "
        "or tiled TIFF",
    ),
    ("file not found", "the file is not there any more; it may have been moved or renamed"),
    ("is a folder", "that is a folder; open one of the slide files inside it"),
    ("the file is empty", "the file is empty (0 bytes); copy it again from its source"),
    ("permission denied", "you may not read this file; check its permissions"),
    (
        "damaged, truncated",
        "the file is damaged or incomplete (an interrupted copy?); copy it again from its source",
    ),
    (
        "unsupported format",
        "this is not a slide format IDC Viewer reads (SVS, NDPI, MRXS, SCN, DICOM WSI, tiled "
        "TIFF, PNG, JPEG)",
    ),
    ("not a readable image", "the image is damaged or uses an unsupported encoding"),
    (
        "unsupported",
        "its image layout or encoding is not supported; try converting it to tiled TIFF",
    ),
)


def explain_open_error(name: str, reason: str) -> str:
    """One line for the user: the file, what went wrong in plain words, what to try."""
    lowered = reason.lower()
    for needle, meaning in _KNOWN:
        if needle in lowered:
            return f"Cannot open {name}: {meaning}. (Details in the log.)"
    return (
        f"Cannot open {name}: the slide reader failed ({reason.strip()[:120]}). "
        "Check that the file is a complete whole-slide image. (Details in the log.)"
    )
