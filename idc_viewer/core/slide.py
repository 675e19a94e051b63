"""The one interface every slide has: :class:`Slide`, its :class:`SlideInfo` and its errors.

Every read returns ``(H, W, 3)`` uint8 RGB with transparent and out-of-bounds areas white.
Coordinates follow OpenSlide: ``l0_x, l0_y`` are level-0 pixels, sizes are pixels of the level read.
Slides come from :func:`idc_viewer.core.readers.open_slide` (files),
:class:`idc_viewer.core.memory.ArraySlide` (arrays) and
:class:`idc_viewer.core.synthetic.SyntheticSlide` (procedural pixels); their µm/px follows
:mod:`idc_viewer.core.scale`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import cv2
import numpy as np

from idc_viewer.core.closing import Closeable
from idc_viewer.core.errors import IdcViewerError

__all__ = ["MissingMppError", "Slide", "SlideError", "SlideInfo"]


class SlideError(IdcViewerError):
    """A slide cannot be opened or read; ``str(exc)`` is a one-line reason for the user."""


class MissingMppError(SlideError):
    """The slide has no µm/px and none was given."""


@dataclass(frozen=True)
class SlideInfo:
    """Geometry and metadata of an opened slide.

    Attributes
    ----------
    path : str
        File path, or a description such as ``"memory"`` for in-memory slides.
    format : str
        OpenSlide vendor (``"aperio"``, ``"hamamatsu"``, ``"dicom"``, ``"generic-tiff"``, ...),
        ``"image/png"`` / ``"image/jpeg"`` / ``"image/tiff"``, ``"array"`` or ``"synthetic"``.
    l0_width, l0_height : int
        Level-0 size in pixels.
    level_count : int
        Number of pyramid levels.
    level_dimensions : tuple of (int, int)
        ``(width, height)`` of each level.
    level_downsamples : tuple of float
        Downsample of each level relative to level 0.
    mpp : float or None
        µm per level-0 pixel.
    mpp_source : {"metadata", "objective-power", "user", None}
        Where ``mpp`` came from.
    objective_power : float or None
        Scanner objective magnification, if recorded.
    properties : Mapping[str, str]
        A subset of the file's metadata (``openslide.*`` keys without per-level entries).
    """

    path: str
    format: str
    l0_width: int
    l0_height: int
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp: float | None
    mpp_source: str | None
    objective_power: float | None
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def level_mpp(self, level: int) -> float | None:
        """µm per pixel of ``level``, or ``None`` without a slide µm/px."""
        return None if self.mpp is None else self.mpp * self.level_downsamples[level]


class Slide(Closeable):
    """A multi-resolution image; reads are thread-safe and return RGB uint8."""

    #: ``(file stats, fingerprint)`` once ``core.fingerprint.slide_fingerprint`` hashed the file.
    _fingerprint_memo: tuple[object, str] | None = None

    def __init__(self, info: SlideInfo) -> None:
        self._info = info

    @property
    def info(self) -> SlideInfo:
        """Geometry and metadata of the slide."""
        return self._info

    def set_user_mpp(self, mpp: float) -> None:
        """Give the slide a µm/px chosen by the user (``mpp_source == "user"``).

        Viewing needs no scale; the analysis does. Raises :class:`SlideError` for a value that
        is not a positive number. Reads are unaffected (only :attr:`info` changes).
        """
        # scale imports SlideError from here: imported on use to keep the two modules acyclic
        from idc_viewer.core.scale import check_user_mpp

        self._info = replace(self._info, mpp=check_user_mpp(mpp), mpp_source="user")

    @abstractmethod
    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """Read a region.

        Parameters
        ----------
        l0_x, l0_y : int
            Top-left corner in level-0 pixels.
        level : int
            Pyramid level to read from.
        lvl_w, lvl_h : int
            Size in pixels of ``level``.

        Returns
        -------
        numpy.ndarray
            ``(lvl_h, lvl_w, 3)`` uint8 RGB; transparent or out-of-bounds areas are white.

        Raises
        ------
        SlideError
            The file could not be read.
        """

    def best_level_for_downsample(self, downsample: float) -> int:
        """Return the coarsest level whose downsample is at most ``downsample`` (as OpenSlide)."""
        best = 0
        for level, ds in enumerate(self._info.level_downsamples):
            if ds <= downsample * (1 + 1e-9):
                best = level
        return best

    def thumbnail(self, max_side: int) -> np.ndarray:
        """Return the whole slide scaled so that its longer side is ``max_side`` pixels (or less).

        Reads from the coarsest level that is still at least as large as the thumbnail and
        shrinks with area averaging.
        """
        info = self._info
        scale = min(1.0, max_side / max(info.l0_width, info.l0_height))
        out_w = max(1, round(info.l0_width * scale))
        out_h = max(1, round(info.l0_height * scale))
        level = self.best_level_for_downsample(info.l0_width / out_w)
        lvl_w, lvl_h = info.level_dimensions[level]
        region = self.read_region(0, 0, level, lvl_w, lvl_h)
        if (lvl_w, lvl_h) == (out_w, out_h):
            return region
        return cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)

    def close(self) -> None:
        """Release the file handle (no-op for in-memory slides)."""

    def fingerprint_bytes(self) -> bytes:
        """Bytes that identify the content when there is no file (see ``core.fingerprint``)."""
        return self.thumbnail(256).tobytes()

    def __repr__(self) -> str:
        """Class, path, size and µm/px."""
        i = self._info
        return f"{type(self).__name__}({i.path!r}, {i.l0_width}x{i.l0_height}, mpp={i.mpp})"
