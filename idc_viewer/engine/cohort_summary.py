"""``cohort.csv``: one row per slide of a cohort run, written atomically.

What a lab sorts by to decide which slides a pathologist reads first: flagged area, largest
region, highest probability. A slide that did not finish has its status (``failed``,
``cancelled``) and the reason, and empty figures, never zeros that look like a clean slide.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Sequence
from pathlib import Path

from idc_viewer.core.writers import csv_safe
from idc_viewer.engine.cohort_task import DONE, SlideOutcome

FILE_NAME = "cohort.csv"
HEADER = (
    "file",
    "status",
    "um_per_px",
    "tissue_patches",
    "flagged_patches",
    "flagged_area_mm2",
    "largest_region_mm2",
    "max_probability",
    "model_hash",
    "seconds",
    "outputs",
    "message",
)


def _number(value: float | int | None, decimals: int | None = None) -> str:
    if value is None:
        return ""
    return str(value) if decimals is None else f"{float(value):.{decimals}f}"


def summary_row(outcome: SlideOutcome) -> list[str]:
    """The cohort.csv cells of one slide (figures only for an analysed slide)."""
    analysed = outcome.status == DONE
    return [
        str(csv_safe(outcome.file)),
        outcome.status,
        _number(outcome.mpp, 6),
        _number(outcome.tissue_patches) if analysed else "",
        _number(outcome.flagged_patches) if analysed else "",
        _number(outcome.flagged_area_mm2, 6) if analysed else "",
        _number(outcome.largest_region_mm2, 6) if analysed else "",
        _number(outcome.max_probability, 6) if analysed else "",
        outcome.model_hash,
        _number(outcome.seconds, 2),
        str(csv_safe(outcome.stem)),
        str(csv_safe(outcome.message)),
    ]


def write_cohort_csv(out_dir: Path, outcomes: Sequence[SlideOutcome]) -> Path:
    """Write ``out_dir/cohort.csv`` (rows in the order given) through a temporary file.

    Raises ``OSError`` when it cannot be written; an older cohort.csv is then left as it was.
    """
    target = Path(out_dir) / FILE_NAME
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows(summary_row(o) for o in outcomes)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return target
