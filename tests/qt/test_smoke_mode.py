"""The app's smoke-test mode (packaging/smoke_test.sh): it goes through Model › Retrain…, answers
the dialog's question Yes, and reports the model the window then uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # app_fakes, under --import-mode=importlib
from app_fakes import FakeModel
from window_fixtures import new_window

from idc_viewer.qt import smoke
from idc_viewer.qt.main_window import MainWindow


def _window(qtbot: Any, tmp_path: Path, exported_spec: str | None) -> MainWindow:
    lines = [{"event": "epoch", "epoch": 1, "epochs": 1}]
    if exported_spec:
        lines.append({"event": "exported", "spec": exported_spec})
    script = "".join(f"print({json.dumps(json.dumps(line))})\n" for line in lines)

    def command(
        data: str, run_dir: str, epochs: int, resume: bool, paper: bool
    ) -> tuple[str, list[str]]:
        assert epochs == 1 and Path(data) == tmp_path / "patches"
        return sys.executable, ["-c", script]

    return new_window(
        qtbot,
        tmp_path,
        model_loader=lambda path: FakeModel(),
        retrain_command=command,
    )


def _retrain_lines(qtbot: Any, window: MainWindow, patches: Path, capsys: Any) -> list[str]:
    """Run the smoke mode's retrain step on ``window`` until it quits; the lines it printed."""
    quits: list[bool] = []
    smoke._retrain(
        SimpleNamespace(quit=lambda: quits.append(True)),
        window,  # type: ignore[arg-type]
        str(patches),
    )
    qtbot.waitUntil(lambda: bool(quits), timeout=20_000)
    return capsys.readouterr().out.splitlines()


def test_smoke_retrain_takes_the_new_model_and_reports_it(qtbot, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "patches").mkdir()
    spec = str(tmp_path / "runs" / "r" / "model" / "new.spec.json")
    window = _window(qtbot, tmp_path, spec)
    out = _retrain_lines(qtbot, window, tmp_path / "patches", capsys)
    assert "message: Training finished. Use the new model?" in out
    assert f"retrain: exit=0 exported={spec}" in out
    assert f"model in use: {spec}" in out
    assert window.state.model_path == spec


def test_smoke_retrain_reports_a_run_that_exports_nothing(qtbot, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "patches").mkdir()
    window = _window(qtbot, tmp_path, None)
    out = _retrain_lines(qtbot, window, tmp_path / "patches", capsys)
    assert "retrain: exit=0 exported=None" in out
    assert not any(line.startswith("model in use") for line in out)
