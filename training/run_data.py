"""The patches of a run: its patients split once (``split.json``), then decoded per split."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data import (
    COMPLETE_PATIENTS,
    COMPLETE_STRATUM,
    Dataset,
    DatasetError,
    load_patches,
    scan_dataset,
    split_patients,
    write_split,
)

SPLITS = ("train", "validation", "test")
SPLIT_FILE = "split.json"
LARGE_PATIENT_PATCHES = 200  # patients with more patches are (near-)complete slides: stratify on it


def _stratum(patient: str, n_patches: int) -> str:
    """Complete slides, other large (near-complete) patients, and sampled ones split apart."""
    if patient in COMPLETE_PATIENTS:
        return COMPLETE_STRATUM
    return "large" if n_patches > LARGE_PATIENT_PATCHES else "sampled"


@dataclass
class SplitArrays:
    """Decoded patches ``x`` (uint8) and labels ``y`` per split, their patients and records."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    patients: dict[str, list[str]]
    records: dict[str, list[Any]]
    skipped: int


def prepare_data(
    config: TrainConfig, log: Callable[[str], None] = print, splits: Sequence[str] = SPLITS
) -> SplitArrays:
    """Scan, split by patient (reusing the run's split.json if present), decode patches.

    ``splits`` limits which splits are decoded, e.g. validation only when choosing between runs.
    """
    dataset: Dataset = scan_dataset(Path(config.data_dir))
    split = run_split(config, dataset)
    by_patient: dict[str, list[Any]] = {}
    for rec in dataset.records:
        by_patient.setdefault(rec.patient, []).append(rec)
    x, y, records = {}, {}, {}
    skipped = 0
    for name, members in split.items():
        if name not in splits:
            continue
        recs = [r for p in members for r in by_patient.get(p, [])]
        x[name], y[name], kept, n_skipped = load_patches(recs)
        records[name] = [recs[i] for i in kept]
        skipped += n_skipped
        log(
            f"{name}: {len(members)} patients, {len(y[name])} patches "
            f"({int(y[name].sum())} IDC), {n_skipped} undecodable skipped"
        )
    if "train" in splits and (len(y["train"]) == 0 or len(np.unique(y["train"])) < 2):
        raise DatasetError("The training split needs patches of both classes (0 and 1).")
    return SplitArrays(x, y, split, records, skipped)


def run_split(config: TrainConfig, dataset: Dataset) -> dict[str, list[str]]:
    """The run's patients per split: its ``split.json``, the dataset's own split, or a new one.

    A new split is stratified (complete, large and sampled patients apart) and written to the
    run's ``split.json`` so that resuming, evaluating and validating see the same patients.
    """
    split_file = Path(config.run_dir) / SPLIT_FILE
    if split_file.exists():
        return {k: v for k, v in json.loads(split_file.read_text()).items() if k in SPLITS}
    if dataset.preset_split is not None:
        return {
            name: sorted(p for p, s in dataset.preset_split.items() if s == name)
            for name in ("train", "validation", "test")
        }
    patients = dataset.patients
    if config.max_patients:
        rng = np.random.default_rng(config.seed)
        patients = sorted(
            rng.choice(patients, min(config.max_patients, len(patients)), replace=False).tolist()
        )
    counts: dict[str, int] = {}
    for rec in dataset.records:
        counts[rec.patient] = counts.get(rec.patient, 0) + 1
    strata = {p: _stratum(p, counts[p]) for p in patients}
    split = split_patients(patients, seed=config.seed, strata=strata)
    write_split(
        split,
        split_file,
        seed=config.seed,
        layout=dataset.layout,
        complete_patients=sorted(p for p in patients if strata[p] == COMPLETE_STRATUM),
        large_patients=sorted(p for p in patients if strata[p] != "sampled"),
    )
    return split
