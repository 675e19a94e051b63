"""Reassemble a complete Kaggle IDC patient into a pyramidal TIFF that OpenSlide opens.

The Kaggle IDC release cuts each patient's 2.5x slide (about 4.0 µm/px) into 50x50 px patches named
``<patient>_idx5_x<X>_y<Y>_class<C>.png``, where X, Y are the 1-based level-0 coordinates of the
patch's top-left corner. For the patients whose every patch is present, placing the patches back at
(X-1, Y-1) on a white canvas recovers the tissue of the slide, with a ground-truth label for every
tissue patch. The result is a realistic test slide for the viewer and for slide-level evaluation.

The TIFF is a plain tiled, JPEG-compressed pyramid (level 0 followed by 2x, 4x, ... reduced pages)
that OpenSlide reads with its generic-tiff driver. µm/px is stored in the standard TIFF
XResolution/YResolution tags with ResolutionUnit = centimeter; OpenSlide (>= 4.0) reports those as
``openslide.mpp-x``/``openslide.mpp-y``. A truth CSV (``x,y,width,height,label`` in level-0 px,
0-based top-left) is written beside it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from idc_viewer.core.patches import DEFAULT_PATCH_MPP
from training.data import KAGGLE_PATCH_NAME

__all__ = [
    "AssembledSlide",
    "PatchPlacement",
    "PatientCanvas",
    "assemble_patient_arrays",
    "assemble_slide",
    "truth_csv_path",
]

_WHITE = 255
_MIN_LEVEL_SIDE = 512  # stop adding pyramid levels once the longer side is at most this
TRUTH_HEADER = ("x", "y", "width", "height", "label")


@dataclass(frozen=True)
class PatchPlacement:
    """One patch placed on the canvas.

    Attributes
    ----------
    path : Path
        Source PNG.
    l0_x, l0_y : int
        0-based top-left corner in level-0 pixels (the file name's X-1, Y-1).
    width, height : int
        Size of the decoded patch in pixels (edge patches may be smaller than 50).
    label : int
        0 (IDC-negative) or 1 (IDC-positive), from the file name.
    """

    path: Path
    l0_x: int
    l0_y: int
    width: int
    height: int
    label: int


@dataclass(frozen=True)
class PatientCanvas:
    """A patient's patches pasted onto one RGB canvas.

    Attributes
    ----------
    canvas : np.ndarray
        (H, W, 3) uint8 RGB, white where no patch lies.
    patches : list[PatchPlacement]
        Every decoded patch, sorted by (l0_y, l0_x).
    skipped : list[Path]
        PNG files that could not be decoded or whose name has no x/y/class.
    """

    canvas: np.ndarray
    patches: list[PatchPlacement]
    skipped: list[Path]


@dataclass(frozen=True)
class AssembledSlide:
    """What :func:`assemble_slide` wrote.

    Attributes
    ----------
    path : Path
        The pyramidal TIFF.
    truth_csv : Path
        The ground-truth CSV beside it.
    width, height : int
        Level-0 size in pixels.
    n_patches : int
        Number of patches placed (rows of the truth CSV).
    n_skipped : int
        PNG files that were skipped (undecodable or unparseable name).
    skipped : tuple[Path, ...]
        The skipped files.
    level_dimensions : tuple[tuple[int, int], ...]
        (width, height) of every pyramid level, level 0 first.
    mpp : float
        µm per pixel stored in the TIFF.
    """

    path: Path
    truth_csv: Path
    width: int
    height: int
    n_patches: int
    n_skipped: int = 0
    skipped: tuple[Path, ...] = ()
    level_dimensions: tuple[tuple[int, int], ...] = ()
    mpp: float = DEFAULT_PATCH_MPP


def truth_csv_path(out_tiff: Path) -> Path:
    """Return the truth CSV path of ``out_tiff`` (``slide.tiff`` -> ``slide.truth.csv``).

    Parameters
    ----------
    out_tiff : Path
        Path of the TIFF.

    Returns
    -------
    Path
        The CSV path, in the same folder.
    """
    out_tiff = Path(out_tiff)
    return out_tiff.with_name(out_tiff.stem + ".truth.csv")


def _patch_files(patient_dir: Path) -> list[Path]:
    files: list[Path] = []
    for label in ("0", "1"):
        class_dir = patient_dir / label
        if class_dir.is_dir():
            files.extend(p for p in class_dir.iterdir() if p.suffix.lower() == ".png")
    return sorted(files)


def _read_rgb(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        return None
    return np.ascontiguousarray(bgr[:, :, ::-1])


def assemble_patient_arrays(patient_dir: Path) -> PatientCanvas:
    """Paste every patch PNG of one patient onto a white RGB canvas.

    Parameters
    ----------
    patient_dir : Path
        ``idc/<patient>`` holding ``0/`` and/or ``1/`` with Kaggle-named PNGs.

    Returns
    -------
    PatientCanvas
        The canvas (size ``max(X-1+w)`` x ``max(Y-1+h)``), the placed patches and the skipped files.

    Raises
    ------
    ValueError
        If the folder does not exist, holds no PNGs, or no PNG could be decoded.
    """
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise ValueError(f"Patient folder {patient_dir} does not exist.")
    files = _patch_files(patient_dir)
    if not files:
        raise ValueError(
            f"No patch PNGs in {patient_dir}: expected "
            f"{patient_dir.name}/<0|1>/*_x<X>_y<Y>_class<C>.png."
        )
    decoded: list[tuple[PatchPlacement, np.ndarray]] = []
    skipped: list[Path] = []
    for path in files:
        match = KAGGLE_PATCH_NAME.search(path.name)
        rgb = _read_rgb(path) if match else None
        if match is None or rgb is None:
            skipped.append(path)
            continue
        x, y = int(match["x"]) - 1, int(match["y"]) - 1
        if x < 0 or y < 0:
            skipped.append(path)
            continue
        h, w = rgb.shape[:2]
        decoded.append((PatchPlacement(path, x, y, w, h, int(match["c"])), rgb))
    if not decoded:
        raise ValueError(f"None of the {len(files)} PNGs in {patient_dir} could be decoded.")
    width = max(p.l0_x + p.width for p, _ in decoded)
    height = max(p.l0_y + p.height for p, _ in decoded)
    canvas = np.full((height, width, 3), _WHITE, dtype=np.uint8)
    decoded.sort(key=lambda item: (item[0].l0_y, item[0].l0_x, item[0].label))
    for p, rgb in decoded:
        canvas[p.l0_y : p.l0_y + p.height, p.l0_x : p.l0_x + p.width] = rgb
    return PatientCanvas(canvas, [p for p, _ in decoded], skipped)


def _pyramid(level0: np.ndarray) -> list[np.ndarray]:
    levels = [level0]
    while max(levels[-1].shape[:2]) > _MIN_LEVEL_SIDE:
        prev = levels[-1]
        h, w = max(1, prev.shape[0] // 2), max(1, prev.shape[1] // 2)
        levels.append(cv2.resize(prev, (w, h), interpolation=cv2.INTER_AREA))
    return levels


def _write_tiff(
    path: Path, levels: list[np.ndarray], *, mpp: float, tile: int, quality: int, lossless: bool
) -> None:
    import tifffile  # local: only this writer needs it

    l0_h, l0_w = levels[0].shape[:2]
    raw_bytes = sum(lvl.nbytes for lvl in levels)
    description = (
        f"IDC Viewer reassembled IDC patient slide; {l0_w}x{l0_h} px; mpp={mpp:g} um/px; "
        + ("lossless (deflate)" if lossless else f"JPEG Q={quality}")
    )
    with tifffile.TiffWriter(path, bigtiff=raw_bytes > 2**31) as writer:
        for index, lvl in enumerate(levels):
            downsample_x = l0_w / lvl.shape[1]
            downsample_y = l0_h / lvl.shape[0]
            writer.write(
                lvl,
                photometric="rgb",
                tile=(tile, tile),
                compression="zlib" if lossless else "jpeg",
                compressionargs=None if lossless else {"level": quality},
                resolution=(1e4 / (mpp * downsample_x), 1e4 / (mpp * downsample_y)),
                resolutionunit="CENTIMETER",
                subfiletype=0 if index == 0 else 1,
                description=description if index == 0 else None,
                metadata=None,
                software="idc-viewer training.assemble_slide",
            )


def _write_truth(path: Path, patches: list[PatchPlacement]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(TRUTH_HEADER)
        for p in patches:
            writer.writerow((p.l0_x, p.l0_y, p.width, p.height, p.label))


def assemble_slide(
    patient_dir: Path,
    out_tiff: Path,
    *,
    mpp: float = DEFAULT_PATCH_MPP,
    tile: int = 256,
    jpeg_quality: int = 90,
    lossless: bool = False,
) -> AssembledSlide:
    """Write a patient's patches as a pyramidal, tiled, JPEG-compressed TIFF plus a truth CSV.

    JPEG tiles change a patch by ~4 grey levels per pixel, enough to lower the models' F1 on a
    slide (measured: 0.872 -> 0.820 on patient 8975); ``lossless`` (deflate, ~5x larger: 17.7 vs
    3.6 MB for 8975) keeps the patches' exact pixels (F1 0.872 as on the PNGs).

    Parameters
    ----------
    patient_dir : Path
        ``idc/<patient>`` in the Kaggle layout (both class folders are read).
    out_tiff : Path
        TIFF to write (parent folders are created). The truth CSV goes to
        :func:`truth_csv_path` of it.
    mpp : float
        µm per level-0 pixel to record (the IDC patches are about 4.0 µm/px).
    tile : int
        Tile side in pixels; a multiple of 16 as TIFF requires.
    jpeg_quality : int
        JPEG quality, 1-100.
    lossless : bool
        Deflate instead of JPEG: the slide's pixels equal the patches'.

    Returns
    -------
    AssembledSlide
        Paths, level-0 size, patch count and the skipped files.

    Raises
    ------
    ValueError
        Bad arguments, an empty patient folder, or no decodable patch.
    """
    if not mpp > 0:
        raise ValueError(f"mpp must be positive, got {mpp}.")
    if tile <= 0 or tile % 16:
        raise ValueError(f"tile must be a positive multiple of 16, got {tile}.")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}.")
    out_tiff = Path(out_tiff)
    assembled = assemble_patient_arrays(Path(patient_dir))
    levels = _pyramid(assembled.canvas)
    out_tiff.parent.mkdir(parents=True, exist_ok=True)
    truth = truth_csv_path(out_tiff)
    tmp_tiff = out_tiff.with_name(out_tiff.name + ".partial")
    tmp_truth = truth.with_name(truth.name + ".partial")
    try:
        _write_tiff(tmp_tiff, levels, mpp=mpp, tile=tile, quality=jpeg_quality, lossless=lossless)
        _write_truth(tmp_truth, assembled.patches)
        os.replace(tmp_tiff, out_tiff)
        os.replace(tmp_truth, truth)
    finally:
        for leftover in (tmp_tiff, tmp_truth):
            leftover.unlink(missing_ok=True)
    height, width = assembled.canvas.shape[:2]
    return AssembledSlide(
        path=out_tiff,
        truth_csv=truth,
        width=width,
        height=height,
        n_patches=len(assembled.patches),
        n_skipped=len(assembled.skipped),
        skipped=tuple(assembled.skipped),
        level_dimensions=tuple((lvl.shape[1], lvl.shape[0]) for lvl in levels),
        mpp=float(mpp),
    )
