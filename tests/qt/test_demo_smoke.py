"""`idc-viewer --demo` brings up a real window titled with "IDC" within a few seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idc_viewer.core.bundled import demo_dir

REPO = Path(__file__).resolve().parents[2]


def _command() -> list[str]:
    launcher = [sys.executable, "-m", "idc_viewer", "--demo"]
    if shutil.which("xvfb-run"):  # a real X server, as on a desktop
        return ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *launcher]
    return launcher


def test_demo_opens_a_window_titled_idc_quickly(tmp_path: Path) -> None:
    if not any(demo_dir().glob("*.tiff")):
        pytest.skip(f"no demo slide in {demo_dir()}")
    env = {
        **os.environ,
        "IDC_VIEWER_SMOKE_TEST": "1",
        "IDC_VIEWER_DATA_DIR": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HOME": str(tmp_path),
    }
    if not shutil.which("xvfb-run"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    started = time.perf_counter()
    result = subprocess.run(
        _command(), env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("window: "))
    assert "IDC" in line and "patient-9037" in line and "visible=True" in line
    assert "Traceback" not in result.stderr
    # generous for noisy CI machines; on the development machine it takes about 2 s
    assert elapsed < 30, f"the demo window took {elapsed:.1f} s"
