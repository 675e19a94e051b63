"""A run's progress after its latest epoch (``state.json``): what resuming continues from."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
#: The weights with the lowest validation loss so far, and the model + optimizer of the last epoch.
BEST_WEIGHTS = "best.weights.h5"
LAST_MODEL = "last.keras"


@dataclass
class EarlyStoppingState:
    """Keras EarlyStopping's counters: best validation loss, epochs since, its epoch (0-based)."""

    best: float
    wait: int
    best_epoch: int


@dataclass
class PlateauState:
    """Keras ReduceLROnPlateau's counters."""

    best: float
    wait: int
    cooldown_counter: int


@dataclass
class RunState:
    """Epoch reached (0-based), per-epoch history and times, and the callbacks' counters.

    ``finished`` is set once training ended; ``averaged_epochs`` only on an averaged run
    (``idc-train average``). Neither is written while unset, as before the type existed.
    """

    epoch: int
    history: dict[str, list[float]]
    epoch_times_s: list[float]
    early_stopping: EarlyStoppingState
    plateau: PlateauState
    finished: bool = False
    averaged_epochs: list[int] | None = field(default=None)

    @property
    def best_epoch_1based(self) -> int:
        """The best epoch by validation loss, counted from 1."""
        return self.early_stopping.best_epoch + 1

    @property
    def epochs_run(self) -> int:
        """How many epochs were trained."""
        return self.epoch + 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """The state as ``state.json`` holds it."""
        return cls(
            epoch=int(data["epoch"]),
            history=data["history"],
            epoch_times_s=data["epoch_times_s"],
            early_stopping=EarlyStoppingState(**data["early_stopping"]),
            plateau=PlateauState(**data["plateau"]),
            finished=bool(data.get("finished", False)),
            averaged_epochs=data.get("averaged_epochs"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON content of ``state.json`` (unset ``finished``/``averaged_epochs`` left out)."""
        data = asdict(self)
        if not self.finished:
            del data["finished"]
        if self.averaged_epochs is None:
            del data["averaged_epochs"]
        return data

    @classmethod
    def read(cls, run_dir: Path) -> RunState:
        """The state of the run in ``run_dir``."""
        return cls.from_dict(json.loads((Path(run_dir) / STATE_FILE).read_text()))

    def write(self, run_dir: Path) -> None:
        """Replace ``run_dir``'s ``state.json`` atomically."""
        tmp = Path(run_dir) / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, Path(run_dir) / STATE_FILE)
