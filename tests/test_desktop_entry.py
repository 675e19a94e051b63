"""packaging/install-desktop.sh: the menu entry, icon and slide MIME types; a double-click (the
entry's Exec line with %f) opens that slide in the viewer."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from idc_viewer.core.bundled import demo_dir

REPO = Path(__file__).resolve().parent.parent
SLIDE_SUFFIXES = (".svs", ".ndpi", ".tif", ".tiff", ".mrxs", ".scn", ".dcm")
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def _install(tmp_path: Path, exe: Path) -> Path:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share"), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "install-desktop.sh"), "--exec", str(exe)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / "share"


def _entry(share: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(share / "applications" / "idc-viewer.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def _viewer() -> Path:
    exe = Path(sys.executable).parent / "idc-viewer"
    if not exe.is_file():
        pytest.skip(f"no idc-viewer beside {sys.executable}")
    return exe


def test_entry_icon_and_every_slide_type_are_installed(tmp_path: Path) -> None:
    share = _install(tmp_path, _viewer())
    entry = _entry(share)
    assert entry["Name"] == "IDC Viewer" and entry["Icon"] == "idc-viewer"
    assert entry["Exec"].endswith(" %f")
    assert (share / "icons" / "hicolor" / "256x256" / "apps" / "idc-viewer.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "idc-viewer.svg").is_file()
    entry_types = set(filter(None, entry["MimeType"].split(";")))
    tree = ET.parse(share / "mime" / "packages" / "idc-viewer.xml")
    globs = {
        glob.get("pattern"): mime.get("type")
        for mime in tree.getroot().iter(f"{MIME_NS}mime-type")
        for glob in mime.iter(f"{MIME_NS}glob")
    }
    for suffix in SLIDE_SUFFIXES:
        assert globs.get(f"*{suffix}") in entry_types, f"{suffix} opens nothing"
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(
            ["desktop-file-validate", str(share / "applications" / "idc-viewer.desktop")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_an_unusable_program_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "install-desktop.sh"), "--exec", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "share" / "applications").exists()


@pytest.mark.slow
def test_double_click_opens_the_slide(tmp_path: Path) -> None:
    slide = demo_dir() / "patient-9037.tiff"
    entry = _entry(_install(tmp_path, _viewer()))
    command = [slide.as_posix() if arg == "%f" else arg for arg in shlex.split(entry["Exec"])]
    env = {
        **os.environ,
        "IDC_VIEWER_SMOKE_TEST": "1",
        "IDC_VIEWER_DATA_DIR": str(tmp_path),
        "HOME": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    if shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("window: "))
    assert "patient-9037.tiff" in line and "IDC" in line and "visible=True" in line
