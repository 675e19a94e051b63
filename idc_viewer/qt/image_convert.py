"""numpy uint8 images -> QImage / QPixmap, with buffers whose lifetime is safe.

Every QImage returned here owns its pixels (a deep copy), so the numpy array may be freed or
changed afterwards. QImage may be built in worker threads; QPixmap only in the GUI thread.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtGui import QImage, QPixmap


def qimage_from_array(array: NDArray[np.uint8]) -> QImage:
    """Convert an ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 array.

    Returns
    -------
    QImage
        ``Format_Grayscale8``, ``Format_RGB888`` or ``Format_RGBA8888`` (straight alpha),
        owning a copy of the pixels.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        fmt, channels = QImage.Format.Format_Grayscale8, 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt, channels = QImage.Format.Format_RGB888, 3
    elif arr.ndim == 3 and arr.shape[2] == 4:
        fmt, channels = QImage.Format.Format_RGBA8888, 4
    else:
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4) pixels, got {arr.shape}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        return QImage()
    arr = np.ascontiguousarray(arr)
    view = QImage(arr.data, width, height, width * channels, fmt)
    # .copy() detaches from the numpy buffer, which may die right after we return.
    return view.copy()


def qimage_for_painting(array: NDArray[np.uint8]) -> QImage:
    """Like :func:`qimage_from_array`, in a format QPainter draws without converting.

    Opaque images become ``Format_RGB32`` (same pixels; RGB888 would be converted on every
    draw, on the GUI thread), translucent ones ``Format_ARGB32_Premultiplied``.
    """
    image = qimage_from_array(array)
    if image.isNull() or image.format() == QImage.Format.Format_Grayscale8:
        return image
    if image.hasAlphaChannel():
        return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    return image.convertToFormat(QImage.Format.Format_RGB32)


def qpixmap_from_array(array: NDArray[np.uint8]) -> QPixmap:
    """Like :func:`qimage_from_array` but returns a QPixmap (GUI thread only)."""
    return QPixmap.fromImage(qimage_from_array(array))


def array_from_qimage(image: QImage) -> NDArray[np.uint8]:
    """Return an ``(H, W, 4)`` RGBA uint8 copy of a QImage's pixels (for tests and export)."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = rgba.width(), rgba.height()
    if width == 0 or height == 0:
        return np.zeros((height, width, 4), dtype=np.uint8)
    buffer = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=rgba.sizeInBytes())
    rows = buffer.reshape(height, rgba.bytesPerLine())[:, : width * 4]
    return rows.reshape(height, width, 4).copy()
