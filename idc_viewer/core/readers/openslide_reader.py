"""Slides read through OpenSlide (Aperio, Hamamatsu, DICOM, MIRAX, tiled TIFF, ...)."""

from __future__ import annotations

import threading
from types import MappingProxyType

import numpy as np
import openslide

from idc_viewer.core.errors import one_line
from idc_viewer.core.pixels import composite_on_white, white
from idc_viewer.core.scale import resolve_mpp
from idc_viewer.core.slide import Slide, SlideError, SlideInfo

__all__ = ["OpenSlideSlide"]

#: Level-0 reads larger than this many pixels are made in strips (see _read_strips).
_STRIP_PX = 1 << 20
_KEPT_PROPERTY_PREFIXES = ("openslide.", "aperio.AppMag", "aperio.MPP", "hamamatsu.SourceLens")


def _kept_properties(props: dict[str, str]) -> dict[str, str]:
    """The metadata :attr:`SlideInfo.properties` keeps (scale and vendor, no per-level keys)."""
    return {
        k: v
        for k, v in props.items()
        if k.startswith(_KEPT_PROPERTY_PREFIXES) and ".level[" not in k
    }


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide (its C library is thread-safe for reads).

    Parameters
    ----------
    path : str
        The file (stored in :attr:`SlideInfo.path`).
    osr : openslide.OpenSlide
        The opened file; closed by :meth:`close`.
    fmt : str
        OpenSlide's vendor name.
    user_mpp : float or None
        µm/px chosen by the user, overriding the file's.
    """

    def __init__(self, path: str, osr: openslide.OpenSlide, fmt: str, user_mpp: float | None):
        props = dict(osr.properties)
        mpp, source, power = resolve_mpp(props, user_mpp)
        w0, h0 = osr.dimensions
        super().__init__(
            SlideInfo(
                path=path,
                format=fmt,
                l0_width=int(w0),
                l0_height=int(h0),
                level_count=int(osr.level_count),
                level_dimensions=tuple((int(w), int(h)) for w, h in osr.level_dimensions),
                level_downsamples=tuple(float(d) for d in osr.level_downsamples),
                mpp=mpp,
                mpp_source=source,
                objective_power=power,
                properties=MappingProxyType(_kept_properties(props)),
            )
        )
        self._osr = osr
        self._closed = False
        self._close_lock = threading.Lock()

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """Read a region through OpenSlide (see :meth:`Slide.read_region`)."""
        if lvl_w <= 0 or lvl_h <= 0:
            return white(lvl_h, lvl_w)
        if self._closed:
            raise SlideError(f"cannot read {self._info.path}: the slide is closed")
        try:
            if level == 0 and lvl_w * lvl_h > _STRIP_PX:
                rgba = self._read_strips(int(l0_x), int(l0_y), int(lvl_w), int(lvl_h))
            else:
                img = self._osr.read_region(
                    (int(l0_x), int(l0_y)), int(level), (int(lvl_w), int(lvl_h))
                )
                rgba = np.asarray(img)
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise SlideError(f"cannot read {self._info.path}: {one_line(exc, 200)}") from exc
        return composite_on_white(rgba)

    def _read_strips(self, l0_x: int, l0_y: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """Read a large level-0 region as horizontal strips.

        Converting one PIL image to numpy holds the GIL throughout (~250 ms for a whole 20x
        scan), which froze the GUI thread.
        """
        out = np.empty((lvl_h, lvl_w, 4), dtype=np.uint8)
        rows = max(1, _STRIP_PX // lvl_w)
        for row0 in range(0, lvl_h, rows):
            h = min(rows, lvl_h - row0)
            strip = self._osr.read_region((l0_x, l0_y + row0), 0, (lvl_w, h))
            out[row0 : row0 + h] = np.asarray(strip)
        return out

    def close(self) -> None:
        """Close the OpenSlide handle (once; later reads raise :class:`SlideError`)."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._osr.close()


def open_openslide(path: str, name: str, vendor: str, mpp: float | None) -> OpenSlideSlide:
    """Open a file OpenSlide recognised as ``vendor``; :class:`SlideError` when it cannot.

    The coarsest level's first pixel is read at once: truncated files fail here, not later.
    """
    try:
        osr = openslide.OpenSlide(path)
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        reason = one_line(exc, 200)
        prefix = f"Reading {path}: "
        if reason.startswith(prefix):  # OpenSlide repeats the path; keep only the reason
            reason = reason[len(prefix) :]
        raise SlideError(f"cannot open {name} ({vendor}): {reason}") from exc
    try:
        slide = OpenSlideSlide(path, osr, vendor, mpp)
        slide.read_region(0, 0, slide.info.level_count - 1, 1, 1)
        return slide
    except Exception as exc:
        osr.close()
        raise SlideError(f"cannot open {name} ({vendor}): {one_line(exc, 200)}") from exc
