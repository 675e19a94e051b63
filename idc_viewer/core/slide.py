"""Whole-slide images behind one small interface.

:func:`open_slide` opens every format OpenSlide reads (Aperio, Hamamatsu, DICOM, tiled TIFF, ...)
and plain PNG/JPEG/TIFF images; :class:`ArraySlide` is the in-memory twin for tests and
:class:`idc_viewer.core.synthetic.SyntheticSlide` generates H&E-like pixels on demand for
slides of any size.

Every read returns ``(H, W, 3)`` uint8 RGB with transparent and out-of-bounds areas white.
Coordinates follow OpenSlide: ``l0_x, l0_y`` are level-0 pixels, sizes are pixels of the level read.

Scale (µm per pixel) policy, in order: a ``mpp`` given by the user; the file's
``openslide.mpp-x/y`` (averaged) when plausible; ``10 / objective-power``; otherwise ``None``.
Values outside ``[MPP_MIN, MPP_MAX]`` are treated as absent: TIFF writers store 72 dpi by default,
which OpenSlide reports as 352.8 µm/px (``boxes.tiff``), and no slide is scanned that coarsely.
Plain images carry no trustworthy scale (their dpi is almost always a default), so their µm/px
comes only from the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType

import cv2
import numpy as np
import openslide

from idc_viewer.core.errors import IdcViewerError

# tifffile reports damaged files through logging; without a handler Python prints those records
# on stderr as a second line beside our one-line error (the SlideError says it all).
logging.getLogger("tifffile").addHandler(logging.NullHandler())

__all__ = [
    "MPP_MAX",
    "MPP_MIN",
    "ArraySlide",
    "MissingMppError",
    "Slide",
    "SlideError",
    "SlideInfo",
    "open_slide",
    "slide_fingerprint",
]

#: Plausible µm/px range; anything outside is treated as missing metadata.
MPP_MIN = 0.01
MPP_MAX = 100.0

_PLAIN_FORMATS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
# Plain images get virtual levels down to this size so thumbnails and tissue detection are cheap.
_MIN_LEVEL_SIDE = 512
# Suffixes of slide formats OpenSlide reads: when it does not recognise such a file, it is damaged.
_WSI_SUFFIXES = frozenset(
    {".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm", ".czi"}
)
#: Level-0 reads larger than this many pixels are made in strips (see _read_strips).
_STRIP_PX = 1 << 20
_KEPT_PROPERTY_PREFIXES = ("openslide.", "aperio.AppMag", "aperio.MPP", "hamamatsu.SourceLens")


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


class Slide(ABC):
    """A multi-resolution image; reads are thread-safe and return RGB uint8."""

    #: ``(file stats, fingerprint)`` once :func:`slide_fingerprint` has hashed the file.
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
        self._info = replace(self._info, mpp=_check_user_mpp(mpp), mpp_source="user")

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

    def close(self) -> None:  # noqa: B027 - optional hook; in-memory slides hold nothing
        """Release the file handle (no-op for in-memory slides)."""

    def fingerprint_bytes(self) -> bytes:
        """Bytes that identify the content when there is no file; see :func:`slide_fingerprint`."""
        return self.thumbnail(256).tobytes()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self._info
        return f"{type(self).__name__}({i.path!r}, {i.l0_width}x{i.l0_height}, mpp={i.mpp})"


# --------------------------------------------------------------------------------------------
# Helpers


def _white(h: int, w: int) -> np.ndarray:
    return np.full((max(h, 0), max(w, 0), 3), 255, dtype=np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend non-premultiplied RGBA onto white."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a grey, RGB or RGBA array of any integer/float dtype to RGB uint8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer):
            peak = max(int(arr.max()) if arr.size else 0, 1)
            # 16-bit images: scale by the dtype's range unless the data uses only 8 bits.
            div = 255 if peak <= 255 else np.iinfo(arr.dtype).max
            arr = np.clip(arr.astype(np.float64) * (255.0 / div), 0, 255).round().astype(np.uint8)
        else:
            scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
            arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise SlideError(f"unsupported image shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 2:  # grey + alpha
        grey = np.repeat(arr[..., :1], 3, axis=2)
        return _composite_on_white(np.concatenate([grey, arr[..., 1:]], axis=2))
    if channels == 3:
        return np.ascontiguousarray(arr)
    if channels == 4:
        return _composite_on_white(arr)
    raise SlideError(f"unsupported image with {channels} channels")


def _valid_mpp(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or not MPP_MIN <= value <= MPP_MAX:
        return None
    return float(value)


def _float_prop(props: Mapping[str, str], key: str) -> float | None:
    raw = props.get(key)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def resolve_mpp(
    props: Mapping[str, str], user_mpp: float | None
) -> tuple[float | None, str | None, float | None]:
    """Return ``(mpp, mpp_source, objective_power)`` following the module's scale policy."""
    power = _float_prop(props, openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    if power is not None and not (math.isfinite(power) and power > 0):
        power = None
    if user_mpp is not None:
        return _check_user_mpp(user_mpp), "user", power
    values = [
        v
        for v in (
            _valid_mpp(_float_prop(props, openslide.PROPERTY_NAME_MPP_X)),
            _valid_mpp(_float_prop(props, openslide.PROPERTY_NAME_MPP_Y)),
        )
        if v is not None
    ]
    if values:
        return sum(values) / len(values), "metadata", power
    if power is not None:
        from_power = _valid_mpp(10.0 / power)  # 40x ~ 0.25 µm/px, 20x ~ 0.5 µm/px
        if from_power is not None:
            return from_power, "objective-power", power
    return None, None, power


def _check_user_mpp(mpp: float) -> float:
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        raise SlideError(f"invalid µm/px {mpp!r}: not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SlideError(f"invalid µm/px {mpp!r}: must be a positive number")
    if not MPP_MIN <= value <= MPP_MAX:
        # 1e-6 would make a grid of 10^14 patches, 1e6 a patch of 0.0002 px
        raise SlideError(
            f"µm/px {value:g} is implausible: scanners give 0.1 to 1 µm/px (0.25 at 40x, "
            f"0.5 at 20x); accepted {MPP_MIN:g} to {MPP_MAX:g}"
        )
    return value


def implausible_mpp(props: Mapping[str, str]) -> str | None:
    """Say what a slide stores for µm/px when that value was rejected as implausible.

    ``None`` when the slide stores no µm/px (or a plausible one).
    """
    found: list[str] = []
    for key in (openslide.PROPERTY_NAME_MPP_X, openslide.PROPERTY_NAME_MPP_Y):
        raw = props.get(key)
        value = _float_prop(props, key)
        if raw is None or _valid_mpp(value) is not None:
            continue
        text = f"{value:.4g}" if value is not None else repr(raw.strip()[:20])
        if text not in found:
            found.append(text)
    if not found:
        return None
    return (
        f"the slide stores {' x '.join(found)} µm per pixel, which is implausible "
        f"(accepted {MPP_MIN:g} to {MPP_MAX:g})"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _virtual_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Level 0 plus 4x-smaller copies until the longer side is below ``_MIN_LEVEL_SIDE``."""
    levels = [image]
    while max(levels[-1].shape[:2]) > _MIN_LEVEL_SIDE and min(levels[-1].shape[:2]) >= 4:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 4, h // 4), interpolation=cv2.INTER_AREA))
    return levels


# --------------------------------------------------------------------------------------------
# In-memory twin


class ArraySlide(Slide):
    """A slide held in memory as one array per pyramid level.

    Parameters
    ----------
    levels : list of numpy.ndarray
        Level 0 first; each ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``; coarser levels smaller.
        Downsamples are the width ratios to level 0, as OpenSlide reports them.
    mpp : float or None
        µm per level-0 pixel.
    path : str
        Name shown to the user and stored in :attr:`SlideInfo.path`.
    format : str
        Value of :attr:`SlideInfo.format`.
    mpp_source : str, optional
        Defaults to ``"user"`` when ``mpp`` is given.
    """

    def __init__(
        self,
        levels: Sequence[np.ndarray],
        mpp: float | None,
        path: str = "memory",
        *,
        format: str = "array",  # mirrors SlideInfo.format
        mpp_source: str | None = None,
        objective_power: float | None = None,
    ) -> None:
        if not levels:
            raise SlideError(f"cannot open {path}: no image levels")
        self._levels = [_to_rgb_uint8(level) for level in levels]
        for level in self._levels:
            level.setflags(write=False)  # shared between reader threads
        h0, w0 = self._levels[0].shape[:2]
        if h0 == 0 or w0 == 0:
            raise SlideError(f"cannot open {path}: the image is empty")
        if mpp is not None:
            mpp = _check_user_mpp(mpp)
        dims = tuple((int(a.shape[1]), int(a.shape[0])) for a in self._levels)
        downsamples = tuple((w0 / w + h0 / h) / 2 for w, h in dims)
        super().__init__(
            SlideInfo(
                path=path,
                format=format,
                l0_width=w0,
                l0_height=h0,
                level_count=len(dims),
                level_dimensions=dims,
                level_downsamples=downsamples,
                mpp=mpp,
                mpp_source=(mpp_source or "user") if mpp is not None else None,
                objective_power=objective_power,
                properties=MappingProxyType({}),
            )
        )

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        arr = self._levels[level]
        ds = self._info.level_downsamples[level]
        # round() inverts l0 = round(lvl * ds), so level pixels stay put across reads.
        x0 = round(l0_x / ds)
        y0 = round(l0_y / ds)
        out = _white(lvl_h, lvl_w)
        h, w = arr.shape[:2]
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + lvl_w, w), min(y0 + lvl_h, h)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = arr[sy0:sy1, sx0:sx1]
        return out

    def fingerprint_bytes(self) -> bytes:
        smallest = self._levels[-1]
        return hashlib.sha256(smallest.tobytes()).digest() + repr(smallest.shape).encode()


# --------------------------------------------------------------------------------------------
# OpenSlide


class _OpenSlideSlide(Slide):
    """A slide read through OpenSlide (its C library is thread-safe for reads)."""

    def __init__(self, path: str, osr: openslide.OpenSlide, fmt: str, user_mpp: float | None):
        props = dict(osr.properties)
        mpp, source, power = resolve_mpp(props, user_mpp)
        kept = {
            k: v
            for k, v in props.items()
            if k.startswith(_KEPT_PROPERTY_PREFIXES) and ".level[" not in k
        }
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
                properties=MappingProxyType(kept),
            )
        )
        self._osr = osr
        self._closed = False
        self._close_lock = threading.Lock()

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        if lvl_w <= 0 or lvl_h <= 0:
            return _white(lvl_h, lvl_w)
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
            raise SlideError(f"cannot read {self._info.path}: {_one_line(exc)}") from exc
        return _composite_on_white(rgba)

    def _read_strips(self, l0_x: int, l0_y: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """A large level-0 read as horizontal strips: converting one PIL image to numpy holds
        the GIL throughout (~250 ms for a whole 20x scan), which froze the GUI thread."""
        out = np.empty((lvl_h, lvl_w, 4), dtype=np.uint8)
        rows = max(1, _STRIP_PX // lvl_w)
        for row0 in range(0, lvl_h, rows):
            h = min(rows, lvl_h - row0)
            strip = self._osr.read_region((l0_x, l0_y + row0), 0, (lvl_w, h))
            out[row0 : row0 + h] = np.asarray(strip)
        return out

    def close(self) -> None:
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._osr.close()


def _open_plain_image(path: Path, fmt: str, mpp: float | None) -> Slide:
    """Open a PNG/JPEG/TIFF that OpenSlide does not read (untiled or not a slide)."""
    image: np.ndarray | None
    try:
        if fmt == "image/tiff":
            import tifffile

            try:
                image = np.asarray(tifffile.imread(str(path), key=0))
            except Exception as exc:  # tifffile raises many types for damaged files
                raise SlideError(
                    f"not a readable TIFF (damaged or truncated): {_one_line(exc)}"
                ) from exc
            if image.size == 0 or image.ndim < 2:
                raise SlideError("the TIFF holds no image (a header only, or damaged)")
            if image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[2] not in (3, 4):
                image = np.moveaxis(image, 0, -1)  # planar (C, H, W) layout
        else:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise SlideError("not a readable image (corrupt or unsupported encoding)")
            if image.ndim == 3 and image.shape[2] == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            elif image.ndim == 3 and image.shape[2] == 4:
                image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] <= 4):
            rgb = _to_rgb_uint8(image)
        else:
            raise SlideError(f"unsupported image layout {image.shape}")
    except SlideError as exc:
        raise SlideError(f"cannot open {path.name}: {exc}") from exc
    except Exception as exc:  # decoders raise many types for damaged files
        raise SlideError(f"cannot open {path.name}: {_one_line(exc)}") from exc
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise SlideError(f"cannot open {path.name}: the image is empty")
    return ArraySlide(
        _virtual_pyramid(rgb),
        None if mpp is None else _check_user_mpp(mpp),
        str(path),
        format=fmt,
    )


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

    Raises
    ------
    SlideError
        Missing, empty, truncated, corrupt or unsupported file, or an invalid ``mpp``;
        ``str(exc)`` is one line naming the file and the reason.
    """
    p = Path(path)
    name = p.name or str(p)
    if mpp is not None:
        _check_user_mpp(mpp)
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
        raise SlideError(f"cannot open {name}: {exc.strerror or _one_line(exc)}") from exc

    try:
        vendor = openslide.OpenSlide.detect_format(str(p))
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"cannot open {name}: {_one_line(exc)}") from exc

    if vendor is not None:
        try:
            osr = openslide.OpenSlide(str(p))
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            reason = _one_line(exc)
            prefix = f"Reading {p}: "
            if reason.startswith(prefix):  # OpenSlide repeats the path; keep only the reason
                reason = reason[len(prefix) :]
            raise SlideError(f"cannot open {name} ({vendor}): {reason}") from exc
        try:
            slide = _OpenSlideSlide(str(p), osr, vendor, mpp)
            slide.read_region(0, 0, slide.info.level_count - 1, 1, 1)  # truncated files fail here
            return slide
        except SlideError as exc:
            osr.close()
            raise SlideError(f"cannot open {name} ({vendor}): {_one_line(exc)}") from exc
        except Exception as exc:
            osr.close()
            raise SlideError(f"cannot open {name} ({vendor}): {_one_line(exc)}") from exc

    fmt = _PLAIN_FORMATS.get(p.suffix.lower())
    if fmt is None and p.suffix.lower() in _WSI_SUFFIXES:
        raise SlideError(
            f"cannot open {name}: not a readable {p.suffix.lower()} slide"
            " (damaged, truncated or a different kind of file)"
        )
    if fmt is None:
        raise SlideError(
            f"cannot open {name}: unsupported format (not a whole-slide image, PNG, JPEG or TIFF)"
        )
    return _open_plain_image(p, fmt, mpp)


# --------------------------------------------------------------------------------------------


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (area averaging) so that its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


#: Bumped when the fingerprint's recipe changes (stored analyses of v1 are then recomputed).
_FINGERPRINT_TAG = b"idc-viewer-fingerprint-v2\0"
_HASH_BLOCK = 8 << 20


def slide_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files whose bytes make up a slide: the file itself plus the companions that
    multi-file formats read (MIRAX's data folder, a DICOM series' other files, a Hamamatsu
    VMS/VMU's images), in a stable order."""
    main = Path(path)
    files = [main]
    suffix = main.suffix.lower()
    try:
        if suffix == ".mrxs":
            data_dir = main.with_suffix("")
            if data_dir.is_dir():
                files += sorted(p for p in data_dir.rglob("*") if p.is_file())
        elif suffix == ".dcm":
            files += sorted(
                p
                for p in main.parent.iterdir()
                if p.is_file() and p.suffix.lower() == ".dcm" and p != main
            )
        elif suffix in (".vms", ".vmu"):
            prefixes = (main.stem + ".", main.stem + "_")
            files += sorted(
                p
                for p in main.parent.iterdir()
                if p.is_file() and p != main and p.name.startswith(prefixes)
            )
    except OSError:
        pass
    return files


def _file_stats(files: Sequence[Path]) -> list[list[object]]:
    out: list[list[object]] = []
    for p in files:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def _hash_files(files: Sequence[Path], head: bytes) -> str:
    h = hashlib.sha256(head)
    root = files[0].parent
    buffer = bytearray(_HASH_BLOCK)
    view = memoryview(buffer)
    for i, p in enumerate(files):
        name = "" if i == 0 else os.path.relpath(p, root)  # the main file may be renamed
        h.update(f"file:{name}:{p.stat().st_size}\0".encode())
        with open(p, "rb", buffering=0) as fh:
            while n := fh.readinto(buffer):
                h.update(view[:n])  # releases the GIL: the GUI stays responsive
    return h.hexdigest()


def _cache_path(cache_dir: Path, files: Sequence[Path]) -> Path:
    key = hashlib.sha256(str(files[0].resolve()).encode("utf-8")).hexdigest()[:32]
    return cache_dir / f"{key}.json"


def _cache_get(cache_dir: Path | None, files: Sequence[Path], stats: object) -> str | None:
    if cache_dir is None:
        return None
    try:
        import json

        entry = json.loads(_cache_path(cache_dir, files).read_text(encoding="utf-8"))
        if entry.get("stats") == stats and isinstance(entry.get("fingerprint"), str):
            return str(entry["fingerprint"])
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _cache_put(cache_dir: Path | None, files: Sequence[Path], stats: object, fp: str) -> None:
    if cache_dir is None:
        return
    import json

    path = _cache_path(cache_dir, files)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"stats": stats, "fingerprint": fp}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a cache only: failing to keep it costs time, never correctness
        with contextlib.suppress(OSError):
            tmp.unlink()


def slide_fingerprint(slide: Slide, cache_dir: Path | str | None = None) -> str:
    """Return a stable id of a slide's content for the results store.

    For files: SHA-256 of every byte of the slide's files (:func:`slide_files`) and its
    level-0 size, so it survives renames and copies but no edit anywhere in the file. The
    hash runs at disk speed (about 1 GB/s here) once per opened slide; with ``cache_dir`` it
    is kept there per file path, size, mtime and inode, so reopening an unchanged file costs
    one ``stat``. In-memory slides hash their :meth:`Slide.fingerprint_bytes`.
    """
    info = slide.info
    head = _FINGERPRINT_TAG + f"{info.l0_width}x{info.l0_height}:{info.level_count}\0".encode()
    path = Path(info.path)
    if info.format in ("array", "synthetic") or not path.is_file():
        return hashlib.sha256(head + b"mem:" + slide.fingerprint_bytes()).hexdigest()
    files = slide_files(path)
    try:
        stats = _file_stats(files)
        memo = getattr(slide, "_fingerprint_memo", None)
        if memo is not None and memo[0] == stats:
            return str(memo[1])
        folder = None if cache_dir is None else Path(cache_dir)
        fingerprint = _cache_get(folder, files, stats)
        if fingerprint is None:
            fingerprint = _hash_files(files, head)
            if _file_stats(files) != stats:
                raise SlideError(f"cannot read {path.name}: the file changed while being read")
            _cache_put(folder, files, stats, fingerprint)
    except OSError as exc:
        raise SlideError(f"cannot read {path.name}: {_one_line(exc)}") from exc
    slide._fingerprint_memo = (stats, fingerprint)
    return fingerprint
