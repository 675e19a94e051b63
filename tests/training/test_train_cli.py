"""One short real training run through ``idc-train``: checkpoint, evaluation report, contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli import main


def train_argv(data: Path, run_dir: Path, *extra: str, patients: int, epochs: int = 1) -> list[str]:
    """``idc-train train DATA --run-dir RUN_DIR --epochs N --max-patients P EXTRA...``."""
    run = ["train", str(data), "--run-dir", str(run_dir), "--epochs", str(epochs)]
    return [*run, "--max-patients", str(patients), *extra]


@pytest.mark.slow
def test_one_epoch_on_a_small_real_subset_writes_a_checked_report(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    argv = train_argv(
        shared_data / "idc", run_dir, "--preset", "native", "--progress-json", patients=24
    )
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1]
    exported = next(e for e in events if e["event"] == "exported")

    split = json.loads((run_dir / "split.json").read_text())
    train, val, test = (set(split[k]) for k in ("train", "validation", "test"))
    assert train and val and test and not (train & val or train & test or val & test)
    assert (run_dir / "last.keras").is_file() and (run_dir / "best.weights.h5").is_file()

    model_dir = run_dir / "model"
    report = json.loads((model_dir / "idc-native-50.report.json").read_text())
    test_metrics = report["test"]
    assert 0.0 <= test_metrics["balanced_accuracy"] <= 1.0
    assert sum(map(sum, test_metrics["confusion_matrix"])) == test_metrics["n"] > 0
    for suffix in (
        "curves.png",
        "roc.png",
        "gradcam.png",
        "model_card.md",
        "classification_report.txt",
        "keras",
        "tflite",
    ):
        assert (model_dir / f"idc-native-50.{suffix}").stat().st_size > 0, suffix
    card = (model_dir / "idc-native-50.model_card.md").read_text()
    assert "validation patients" in card  # the threshold's provenance is stated
    low, high = report["test_patient_bootstrap_95"]["f1"]
    assert low <= test_metrics["f1"] <= high
    assert "test patients resampled" in card

    from idc_viewer.ml.loading import load_model

    loaded = load_model(Path(exported["spec"]))
    assert loaded.spec.threshold == pytest.approx(report["threshold"], abs=1e-3)
    assert loaded.spec.training_data["patients"]["test"] == len(test)


def test_resume_of_a_finished_run_does_nothing_and_validate_reads_no_test_patient(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / "run"
    args = train_argv(shared_data / "idc", run_dir, "--no-export", patients=12)
    assert main(args) == 0
    state = json.loads((run_dir / "state.json").read_text())
    assert main([*args, "--resume"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == state["epoch"]
    # raising the limits continues the same run, and the run's config records them
    longer = train_argv(
        shared_data / "idc",
        run_dir,
        "--patience",
        "7",
        "--no-export",
        "--resume",
        epochs=2,
        patients=12,
    )
    assert main(longer) == 0
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == state["epoch"] + 1
    assert json.loads((run_dir / "config.json").read_text())["early_stopping_patience"] == 7

    import training.data

    split = json.loads((run_dir / "split.json").read_text())
    real_load = training.data.load_patches
    loaded_patients: set[str] = set()

    def spy(records: list[training.data.PatchRecord]) -> object:
        loaded_patients.update(r.patient for r in records)
        return real_load(records)

    monkeypatch.setattr("training.run_data.load_patches", spy)
    capsys.readouterr()
    assert main(["validate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "validation patients only" in out and "F1(IDC)" in out
    assert "slides F1 / BAC: lossless" in out and "JPEG" in out and "20x" in out
    assert loaded_patients == set(split["validation"])  # test patients never decoded
    result = json.loads((run_dir / "validation.json").read_text())
    assert 0.0 <= result["validation_patients"]["balanced_accuracy"] <= 1.0
    assert result["best_epoch"] == 1 and result["finished"]
    complete_validation = set(split["validation"]) & set(split["complete_patients"])
    per_slide = result["validation_slides"].get("per_slide", [])
    assert {row["patient"] for row in per_slide} == complete_validation


def test_a_missing_dataset_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r")]) == 1
    assert "does not exist" in capsys.readouterr().err
