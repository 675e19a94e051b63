"""The wheel a user installs works on its own: built here, installed into a fresh virtual
environment outside the checkout, it runs ``idc-viewer --version`` and ``analyze`` on its demo.

Installing TensorFlow and the rest again would take minutes, so the fresh environment gets only
the wheel (``--no-deps``) and sees the dependencies through a ``.pth`` line naming this
environment's site-packages. A ``.pth`` line adds a folder without running the ``.pth`` files
inside it, so the editable install of the checkout stays invisible; the test checks that
``idc_viewer`` and ``training`` are imported from the fresh environment.
"""

from __future__ import annotations

import csv
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(cmd: list[str | Path], cwd: Path, timeout_s: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONNOUSERSITE="1", IDC_VIEWER_DATA_DIR=str(cwd))
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


def _probabilities(path: Path) -> list[tuple[str, str, str]]:
    with path.open(newline="") as handle:
        return [(r["x"], r["y"], r["probability"]) for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; returns its ``bin`` folder."""
    root = tmp_path_factory.mktemp("wheel")
    # from a copy of what the wheel is made of: a build/ folder left in the checkout by an
    # earlier build would otherwise leak its files into this wheel
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("idc_viewer", "training"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", root / "dist", source],
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("idc_viewer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for wanted in (
        "idc_viewer/resources/models/idc-native-50.keras",
        "idc_viewer/resources/models/idc-native-50.tflite",
        "idc_viewer/resources/models/idc-native-50.spec.json",
        "idc_viewer/resources/models/idc-native-50.model_card.md",
        "idc_viewer/resources/demo/patient-9037.tiff",
        "idc_viewer/resources/icons/idc-viewer.png",
        "training/cli.py",
    ):
        assert wanted in names, f"the wheel lacks {wanted}"
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
        ).strip()
    )
    (purelib / "_idc_test_deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            wheel,
        ],
        cwd=root,
    )
    return venv / "bin"


def test_installed_wheel_imports_from_the_fresh_environment(installed: Path) -> None:
    code = "import idc_viewer, training; print(idc_viewer.__file__); print(training.__file__)"
    out = _run([installed / "python", "-c", code], cwd=installed.parent)
    for line in out.splitlines():
        assert Path(line).resolve().is_relative_to(installed.parent.resolve()), line
        assert not Path(line).resolve().is_relative_to(REPO), line


def test_installed_wheel_reports_its_version(installed: Path) -> None:
    from idc_viewer import __version__

    out = _run([installed / "idc-viewer", "--version"], cwd=installed.parent)
    assert out.strip() == f"idc-viewer {__version__}"
    assert "idc-train" in _run([installed / "idc-train", "--help"], cwd=installed.parent)


def test_installed_wheel_analyses_its_demo_slide_as_the_checkout_does(
    installed: Path, tmp_path: Path
) -> None:
    site_dir = Path(
        _run(
            [installed / "python", "-c", "import idc_viewer; print(idc_viewer.__file__)"],
            cwd=tmp_path,
        ).strip()
    ).parent
    demo = site_dir / "resources" / "demo" / "patient-9037.tiff"
    _run(
        [
            installed / "idc-viewer",
            "analyze",
            demo,
            "--out",
            tmp_path / "wheel",
            "--quiet",
            "--results-dir",
            tmp_path / "wheel-results",
        ],
        cwd=tmp_path,
    )
    _run(
        [
            sys.executable,
            "-m",
            "idc_viewer",
            "analyze",
            REPO / "idc_viewer" / "resources" / "demo" / "patient-9037.tiff",
            "--out",
            tmp_path / "checkout",
            "--quiet",
            "--results-dir",
            tmp_path / "checkout-results",
        ],
        cwd=tmp_path,
    )
    from_wheel = _probabilities(tmp_path / "wheel" / "patient-9037.patches.csv")
    assert len(from_wheel) > 100
    assert from_wheel == _probabilities(tmp_path / "checkout" / "patient-9037.patches.csv")
