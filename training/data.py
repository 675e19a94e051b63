"""Reading IDC patch datasets and splitting them by patient.

Two layouts are detected automatically:
- Kaggle: ``<root>/<patient>/<0|1>/*.png`` (patients are folders);
- paper: ``<root>/<split>/<0|1>/*.png`` with split in train / val(idation) / test.
Neighbouring patches of one patient are near-duplicates, so splits are always by patient.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.patches import DEFAULT_PATCH_PX

SPLIT_NAMES = ("train", "validation", "test")
_PAPER_SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
KAGGLE_PATCH_NAME = re.compile(r"_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<c>[01])\.png$", re.IGNORECASE)


class DatasetError(IdcViewerError):
    """A dataset folder that cannot be used, with a message fit for the user."""


@dataclass(frozen=True)
class PatchRecord:
    """One labelled patch file of a patient, with its place in the slide when its name says."""

    path: Path
    label: int
    patient: str
    l0_x: int | None = None  # 0-based top-left in the patient's 4 µm/px slide (Kaggle names)
    l0_y: int | None = None


@dataclass
class Dataset:
    """Every labelled patch of a dataset folder, its layout and (paper layout) its split."""

    layout: str  # "kaggle" | "paper"
    records: list[PatchRecord]
    preset_split: dict[str, str] | None = None  # patient -> split, for the paper layout
    skipped: list[str] = field(default_factory=list)

    @property
    def patients(self) -> list[str]:
        """The dataset's patients, sorted."""
        return sorted({r.patient for r in self.records})


def scan_dataset(root: Path) -> Dataset:
    """Find every labelled patch under ``root`` and detect its layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {root} does not exist.")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise DatasetError(f"{root} holds no folders: expected <patient>/<0|1>/*.png.")
    names = {p.name.lower() for p in subdirs}
    paper = names <= set(_PAPER_SPLIT_ALIASES) and "train" in names
    records: list[PatchRecord] = []
    preset: dict[str, str] | None = {} if paper else None
    for group in subdirs:
        for label in (0, 1):
            class_dir = group / str(label)
            if not class_dir.is_dir():
                continue
            for png in sorted(class_dir.glob("*.png")):
                records.append(_record(png, label, group.name, paper))
        if paper and preset is not None:
            for rec in records:
                preset.setdefault(rec.patient, _PAPER_SPLIT_ALIASES[group.name.lower()])
    if not records:
        raise DatasetError(
            f"No labelled patches under {root}: expected <patient or split>/<0|1>/*.png."
        )
    _check_labels(records)
    return Dataset("paper" if paper else "kaggle", records, preset)


def _record(png: Path, label: int, group: str, paper: bool) -> PatchRecord:
    match = KAGGLE_PATCH_NAME.search(png.name)
    patient = group
    if paper:  # the paper layout loses the patient folder; recover it from the Kaggle name
        patient = png.name.split("_", 1)[0] if match else f"{group}:{png.stem}"
    if match is None:
        return PatchRecord(png, label, patient)
    return PatchRecord(png, label, patient, int(match["x"]) - 1, int(match["y"]) - 1)


def _check_labels(records: Iterable[PatchRecord]) -> None:
    """A Kaggle name carries its class: a patch in the wrong class folder is mislabelled."""
    wrong = [
        r.path
        for r in records
        if (m := KAGGLE_PATCH_NAME.search(r.path.name)) and int(m["c"]) != r.label
    ]
    if wrong:
        raise DatasetError(
            f"{len(wrong)} patches sit in the wrong class folder, e.g. {wrong[0]} "
            "(its name says another class)."
        )


# Patients whose every patch is present, so the whole slide can be reassembled with a true label
# per tissue patch (listed in ../shared/data/README.md; 14082 and 14306 added 2026-12-01).
COMPLETE_PATIENTS = frozenset(
    {
        *("8863", "8865", "8867", "8913", "8914", "8951", "8955", "8974", "8975", "8980", "8984"),
        *("9022", "9035", "9037", "9041", "9076", "9078", "9123", "9124", "9126", "14082", "14306"),
    }
)
# Whole-slide figures need several slides per split to choose anything on: complete patients
# are spread so that validation and test get at least this many each (when there are enough).
MIN_COMPLETE_PER_SPLIT = 5
COMPLETE_STRATUM = "complete"


def split_patients(
    patients: Sequence[str],
    *,
    seed: int = 42,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    strata: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split patients (never patches) into train/validation/test with a fixed seed.

    ``strata`` maps patient -> group (e.g. complete vs sampled slides); each group is split
    separately so every split gets its share of each. The ``"complete"`` group gives validation
    and test at least ``MIN_COMPLETE_PER_SPLIT`` patients each, when it has three times as many.
    """
    groups: dict[str, list[str]] = {}
    for patient in sorted(patients):
        groups.setdefault((strata or {}).get(patient, "all"), []).append(patient)
    rng = random.Random(seed)
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        n_val = max(1, round(len(members) * fractions[1])) if len(members) >= 3 else 0
        n_test = max(1, round(len(members) * fractions[2])) if len(members) >= 3 else 0
        if key == COMPLETE_STRATUM and len(members) >= 3 * MIN_COMPLETE_PER_SPLIT:
            n_val = max(n_val, MIN_COMPLETE_PER_SPLIT)
            n_test = max(n_test, MIN_COMPLETE_PER_SPLIT)
        split["test"] += members[:n_test]
        split["validation"] += members[n_test : n_test + n_val]
        split["train"] += members[n_test + n_val :]
    return {name: sorted(members) for name, members in split.items()}


def write_split(split: dict[str, list[str]], path: Path, **extra: object) -> None:
    """Write a split as ``split.json`` (unit, ``extra`` facts, then the patients per split)."""
    data = {"unit": "patient", **extra, **split}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_split(path: Path) -> dict[str, list[str]]:
    """The patients per split of a ``split.json``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: list(data[name]) for name in SPLIT_NAMES}


def load_patch(path: Path) -> np.ndarray | None:
    """One patch as RGB uint8 50x50; smaller edge patches padded with white. None if undecodable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        return None
    rgb = cv2.cvtColor(bgr[:DEFAULT_PATCH_PX, :DEFAULT_PATCH_PX], cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] != (DEFAULT_PATCH_PX, DEFAULT_PATCH_PX):
        padded = np.full((DEFAULT_PATCH_PX, DEFAULT_PATCH_PX, 3), 255, np.uint8)
        padded[: rgb.shape[0], : rgb.shape[1]] = rgb
        rgb = padded
    return rgb


def load_patches(records: Sequence[PatchRecord]) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Decode ``records`` into (N,50,50,3) uint8 and (N,) labels; returns kept indices, skipped."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(load_patch, (r.path for r in records), chunksize=256))
    decoded = [(i, img) for i, img in enumerate(images) if img is not None]
    kept = [i for i, _ in decoded]
    if not kept:
        return (
            np.zeros((0, DEFAULT_PATCH_PX, DEFAULT_PATCH_PX, 3), np.uint8),
            np.zeros((0,), np.int32),
            [],
            len(records),
        )
    x = np.stack([img for _, img in decoded])
    y = np.asarray([records[i].label for i in kept], np.int32)
    return x, y, kept, len(records) - len(kept)


def undersample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a class-balanced subset: the majority randomly cut to the minority's size."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n = min(len(pos), len(neg))
    keep = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return np.sort(keep)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Keras class weights that make both classes weigh as much in the loss."""
    counts = np.bincount(labels, minlength=2).astype(float)
    return {c: float(len(labels) / (2 * counts[c])) for c in (0, 1) if counts[c] > 0}
