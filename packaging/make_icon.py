"""Draw the application icon (no download): an H&E-pink tile with nuclei and a heat spot.

Writes ``idc_viewer/resources/icons/idc-viewer.svg`` (hand-written SVG) and a 256 px PNG of the
same picture drawn with OpenCV. Rerun after changing the design:
``.venv/bin/python packaging/make_icon.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "idc_viewer" / "resources" / "icons"
SIZE_PX = 256
# (x, y, r) of the haematoxylin-stained nuclei, in a 256 px frame
NUCLEI = [
    (60, 70, 14),
    (100, 52, 11),
    (70, 120, 12),
    (52, 175, 13),
    (110, 196, 11),
    (150, 150, 12),
    (196, 200, 13),
    (120, 100, 10),
]
HEAT_CENTRE, HEAT_R = (176, 86), 58
RING_R = 50


def svg() -> str:
    nuclei = "\n".join(
        f'  <circle cx="{x}" cy="{y}" r="{r}" fill="#5b3a8c"/>' for x, y, r in NUCLEI
    )
    cx, cy = HEAT_CENTRE
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE_PX}" height="{SIZE_PX}" \
viewBox="0 0 {SIZE_PX} {SIZE_PX}">
  <defs>
    <radialGradient id="heat">
      <stop offset="0" stop-color="#ff2a00" stop-opacity="0.95"/>
      <stop offset="0.55" stop-color="#ffb000" stop-opacity="0.75"/>
      <stop offset="1" stop-color="#ffe000" stop-opacity="0"/>
    </radialGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="40" fill="#f4c7d9" stroke="#8c4a6e" \
stroke-width="6"/>
{nuclei}
  <circle cx="{cx}" cy="{cy}" r="{HEAT_R}" fill="url(#heat)"/>
  <circle cx="{cx}" cy="{cy}" r="{RING_R}" fill="none" stroke="#202020" stroke-width="10"/>
  <line x1="{cx - 36}" y1="{cy + 36}" x2="{cx - 80}" y2="{cy + 80}" stroke="#202020" \
stroke-width="16" stroke-linecap="round"/>
</svg>
"""


def png() -> np.ndarray:
    """The same picture as BGRA, drawn at 4x and shrunk for smooth edges."""
    k = 4
    s = SIZE_PX * k
    bgr = np.zeros((s, s, 3), np.float32)
    alpha = np.zeros((s, s), np.uint8)
    cv2.rectangle(alpha, (8 * k + 40 * k, 8 * k), (248 * k - 40 * k, 248 * k), 255, -1)
    cv2.rectangle(alpha, (8 * k, 8 * k + 40 * k), (248 * k, 248 * k - 40 * k), 255, -1)
    for cx, cy in [(48, 48), (208, 48), (48, 208), (208, 208)]:
        cv2.circle(alpha, (cx * k, cy * k), 40 * k, 255, -1)
    border = cv2.erode(alpha, np.ones((6 * k, 6 * k), np.uint8))
    bgr[:] = (0x6E, 0x4A, 0x8C)  # border colour, BGR
    bgr[border > 0] = (0xD9, 0xC7, 0xF4)
    for x, y, r in NUCLEI:
        cv2.circle(bgr, (x * k, y * k), r * k, (0x8C, 0x3A, 0x5B), -1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    d = np.hypot(xx - HEAT_CENTRE[0] * k, yy - HEAT_CENTRE[1] * k) / (HEAT_R * k)
    a = np.clip(0.95 * (1 - d), 0, 1)[..., None]
    heat = np.where(d[..., None] < 0.55, (0x00, 0x2A, 0xFF), (0x00, 0xB0, 0xFF)).astype(np.float32)
    bgr = bgr * (1 - a) + heat * a
    cx, cy = HEAT_CENTRE
    cv2.circle(bgr, (cx * k, cy * k), RING_R * k, (32, 32, 32), 10 * k, cv2.LINE_AA)
    cv2.line(
        bgr,
        ((cx - 36) * k, (cy + 36) * k),
        ((cx - 80) * k, (cy + 80) * k),
        (32, 32, 32),
        16 * k,
        cv2.LINE_AA,
    )
    out = np.dstack([bgr.clip(0, 255).astype(np.uint8), alpha])
    return cv2.resize(out, (SIZE_PX, SIZE_PX), interpolation=cv2.INTER_AREA)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "idc-viewer.svg").write_text(svg(), encoding="utf-8")
    cv2.imwrite(str(OUT / "idc-viewer.png"), png())
    print(f"wrote {OUT}/idc-viewer.svg and .png")


if __name__ == "__main__":
    main()
