"""Brightness, contrast and gamma of the slide layer: for the eye only, never for the model.

:class:`DisplayAdjustments` is a value; :meth:`DisplayAdjustments.lut` turns it into a 256-entry
table that the slide view applies to what it has painted of the slide (tiles and thumbnail,
before the heatmap), so neither the analysis nor the exports see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray
from PySide6.QtGui import QImage


@dataclass(frozen=True)
class DisplayAdjustments:
    """``out = ((in / 255 - 0.5) * contrast + 0.5 + brightness) ** (1 / gamma)``, clipped.

    brightness in [-1, 1] (0: none), contrast > 0 (1: none), gamma > 0 (1: none; > 1 lightens
    mid-tones).
    """

    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0

    @property
    def is_identity(self) -> bool:
        """The slide is shown as read."""
        return self.brightness == 0.0 and self.contrast == 1.0 and self.gamma == 1.0

    def lut(self) -> NDArray[np.uint8]:
        """The 256-entry lookup table of these adjustments."""
        return _lut(self.brightness, self.contrast, self.gamma)


@cache
def _lut(brightness: float, contrast: float, gamma: float) -> NDArray[np.uint8]:
    x = np.arange(256, dtype=np.float64) / 255.0
    y = np.clip((x - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0) ** (1.0 / max(gamma, 1e-3))
    table = np.rint(y * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def apply_in_place(image: QImage, adjustments: DisplayAdjustments) -> None:
    """Apply the table to the colour channels of a ``Format_RGB32`` image, in place.

    The same table maps every channel, so the byte order (BGRA in memory) does not matter.
    """
    if image.format() != QImage.Format.Format_RGB32:
        raise ValueError(f"expected a Format_RGB32 image, got {image.format()}")
    width, height = image.width(), image.height()
    if width == 0 or height == 0:
        return
    buffer = np.frombuffer(image.bits(), dtype=np.uint8, count=image.sizeInBytes())
    pixels = buffer.reshape(height, image.bytesPerLine())[:, : width * 4].reshape(height, width, 4)
    pixels[..., :3] = adjustments.lut()[pixels[..., :3]]
