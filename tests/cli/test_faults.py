"""``idc-viewer`` under bad input and faults: nothing lost, nothing mixed, one line per error.

The CNN is the fast fake of tests/model_fakes.py (patched in for ``_load_model``), the slides
small synthetic TIFFs written by each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from model_fakes import FakeModel
from slide_fakes import write_pyramid_tiff

from idc_viewer import cli
from idc_viewer.cli import errors, info, inputs
from idc_viewer.cli.main import main
from idc_viewer.core import fileset
from idc_viewer.engine.outputs import output_stems, slide_stem

TESTS = Path(__file__).resolve().parents[1]


def tissue_image(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """White glass with a pink tissue block whose shade depends on ``seed``."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)
    block = rng.integers(0, 60, size=(height // 2, width // 2, 1), dtype=np.int16)
    base = np.array([150 + 20 * (seed % 5), 110, 170], dtype=np.int16)
    image[height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2] = np.clip(
        base - block, 0, 255
    ).astype(np.uint8)
    return image


def make_slide(path: Path, seed: int = 0, mpp: float | None = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pyramid_tiff(path, tissue_image(seed), levels=2, mpp=mpp, compression=None)


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    model = FakeModel()
    monkeypatch.setattr(inputs, "load_model", lambda path, predictor=False: model)
    return model


def analyze(tmp_path: Path, *inputs: Path | str, out: str = "out") -> list[str]:
    return [
        "analyze",
        *map(str, inputs),
        "--out",
        str(tmp_path / out),
        "--results-dir",
        str(tmp_path / "results"),
        "-q",
    ]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------- 1. stems


def test_stems_are_the_name_minus_the_last_suffix():
    assert slide_stem("a.b.tiff") == "a.b"
    assert slide_stem("dir/slide.v1.5.svs") == "slide.v1.5"
    assert slide_stem("plain") == "plain"
    assert slide_stem(".svs") == ".svs"
    assert output_stems([Path("x/a.svs"), Path("y/a.svs"), Path("a~2.svs"), Path("a.tiff")]) == [
        "a",
        "a~3",
        "a~2",
        "a~4",
    ]


def test_names_that_collided_before_get_their_own_outputs(tmp_path, fake_cli, capsys):
    folder = tmp_path / "in"
    for seed, name in enumerate(["a-2.tiff", "a.b.tiff", "a.c.tiff", "slide.v1.5.tiff"]):
        make_slide(folder / name, seed=seed)
    assert main(analyze(tmp_path, folder)) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for name, stem in [
        ("a-2.tiff", "a-2"),
        ("a.b.tiff", "a.b"),
        ("a.c.tiff", "a.c"),
        ("slide.v1.5.tiff", "slide.v1.5"),
    ]:
        prov = json.loads((out / f"{stem}.provenance.json").read_text())
        assert prov["slide"]["name"] == name  # each set describes its own slide
        assert fileset.verify(out, stem, ".provenance.json") == []
    assert len(list(out.glob("*.patches.csv"))) == 4


def test_same_name_in_two_folders_is_numbered_and_said(tmp_path, fake_cli, capsys):
    first = make_slide(tmp_path / "x" / "a.tiff", 1)
    second = make_slide(tmp_path / "y" / "a.tiff", 2)
    assert main(analyze(tmp_path, first, second)) == 0
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert json.loads((out / "a.provenance.json").read_text())["slide"]["path"] == str(first)
    assert json.loads((out / "a~2.provenance.json").read_text())["slide"]["path"] == str(second)
    assert "a~2" in err  # the user is told where the second slide's files went


# --------------------------------------------------------------------------- 2. re-export


def test_failed_reexport_keeps_the_previous_good_export(tmp_path, fake_cli, capsys, monkeypatch):
    slide = make_slide(tmp_path / "s.tiff")
    assert main(analyze(tmp_path, slide)) == 0
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = os.replace

    def locked(src, dst):  # regions.csv open in a spreadsheet (Windows sharing violation)
        if out / "s.regions.csv" in (Path(src), Path(dst)):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(fileset.os, "replace", locked)
    capsys.readouterr()
    assert main([*analyze(tmp_path, slide), "--threshold", "0.1"]) == 1
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "s.regions.csv" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------- 10. smaller ones


def test_a_folder_without_slides_among_slides_is_reported(tmp_path, fake_cli, capsys):
    slide = make_slide(tmp_path / "s.tiff")
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(analyze(tmp_path, slide, empty))
    err = capsys.readouterr().err
    assert rc == 1
    assert any("empty" in line and "no slide files" in line for line in error_lines(err))
    assert (tmp_path / "out" / "s.patches.csv").is_file()  # the slide itself was analysed


def test_help_names_the_real_geojson_file(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "<stem>.regions.geojson" in text
    assert "<stem>.geojson" not in text.replace("<stem>.regions.geojson", "")
    assert "<stem>.regions.geojson" in (cli.__doc__ or "")


SLOW_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from model_fakes import FakeModel, FakePredictor
    from idc_viewer.cli import inputs, main
    started = lambda calls: Path({marker!r}).touch()  # the CNN is running
    model = FakeModel(predictor=FakePredictor(delay_s=0.3, on_call=started))
    inputs.load_model = lambda path, predictor=False: model
    sys.exit(main.main(sys.argv[1:]))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX SIGTERM delivery")
def test_sigterm_ends_like_ctrl_c_with_a_message(tmp_path):
    slide = make_slide(tmp_path / "s.tiff", mpp=4.0)  # ~30 tissue patches of 0.3 s each
    marker = tmp_path / "started"
    code = SLOW_CHILD.format(tests=str(TESTS), marker=str(marker))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *analyze(tmp_path, slide)[:-1], "--batch-size", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert "terminated" in err and "rerun to resume" in err
    assert not [p for p in (tmp_path / "out").glob(".*")]  # no temporaries left


# --------------------------------------------------------------------------- 5-6. store


def test_a_damaged_store_is_reported_in_one_line_and_recomputed(tmp_path, fake_cli, capsys):
    import sqlite3

    slide = make_slide(tmp_path / "s.tiff")
    assert main(analyze(tmp_path, slide)) == 0
    first = (tmp_path / "out" / "s.patches.csv").read_bytes()
    (db,) = (tmp_path / "results").rglob("*.sqlite3")
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE cells SET probability = 7.0")
    conn.close()
    capsys.readouterr()
    assert main(analyze(tmp_path, slide)) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "Traceback" not in err
    assert (tmp_path / "out" / "s.patches.csv").read_bytes() == first  # recomputed, no 7.0
    assert list((tmp_path / "results").rglob("*.damaged-*"))  # kept for inspection


# --------------------------------------------------------------------------- 7. extreme input


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("mpp", ["1e-300", "1e-6", "0.001", "1e6", "1000"])
def test_implausible_user_mpp_is_one_line(tmp_path, capsys, mpp):
    slide = make_slide(tmp_path / "s.tiff")
    assert main(["info", str(slide), "--mpp", mpp]) == 1
    assert "implausible" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("mpp", ["nan", "inf", "-1", "0", "abc"])
def test_non_numbers_for_mpp_are_one_usage_line(tmp_path, capsys, mpp):
    with pytest.raises(SystemExit) as exc:
        main(["info", str(tmp_path / "s.tiff"), "--mpp", mpp])
    assert exc.value.code == errors.EXIT_USAGE
    assert "--mpp" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_gradcam_coordinates_must_be_finite(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["gradcam", str(tmp_path / "s.tiff"), f"--x={value}", "--y", "5", "-o", "g.png"])
    assert exc.value.code == errors.EXIT_USAGE
    assert "finite" in one_error_line(capsys.readouterr().err)


def test_a_tiff_of_only_a_header_is_one_line(tmp_path):
    """In a real process: tifffile's log record reached stderr as a second line."""
    path = tmp_path / "header.tiff"
    path.write_bytes(b"II*\0\x08\0\0\0")
    proc = subprocess.run(
        [sys.executable, "-m", "idc_viewer", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "header.tiff" in one_error_line(proc.stderr)


@pytest.mark.parametrize(("stored", "shown"), [(1e6, "1e+06"), (2000.0, "2000")])
def test_an_implausible_stored_mpp_is_named_as_such(tmp_path, capsys, stored, shown):
    slide = make_slide(tmp_path / "s.tiff", mpp=stored)
    assert main(["info", str(slide)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"stores {shown} µm per pixel, which is implausible" in line and "--mpp" in line


def test_an_unexpected_exception_is_still_one_line(tmp_path, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(info, "cmd_info", boom)
    assert main(["info", "x.svs"]) == 1
    assert "internal error" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 10. gradcam


class FakeCam:
    model_label = "fake (aaaaaaaa)"

    def __init__(self, *args: object) -> None:
        pass

    @classmethod
    def for_model(cls, model: object) -> FakeCam:
        return cls()

    def compute(self, patch: np.ndarray) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(probability=0.147, cam=np.full((12, 12), 0.5, np.float32))


@pytest.fixture
def fake_gradcam(monkeypatch: pytest.MonkeyPatch, fake_cli: FakeModel) -> FakeModel:
    from idc_viewer.ml import gradcam

    monkeypatch.setattr(gradcam, "GradCam", FakeCam)
    fake_cli.keras_model = object()  # type: ignore[attr-defined]
    return fake_cli


def gradcam_args(slide: Path, out: Path, x: int, y: int) -> list[str]:
    return ["gradcam", str(slide), "--x", str(x), "--y", str(y), "-o", str(out)]


def test_gradcam_on_background_says_it_is_not_tissue(tmp_path, capsys, fake_gradcam):
    slide = make_slide(tmp_path / "s.tiff")  # tissue in the middle, white glass at the corners
    assert main(gradcam_args(slide, tmp_path / "bg.png", 5, 5)) == 0
    err = capsys.readouterr().err
    assert any(line.startswith("warning:") and "not tissue" in line for line in err.splitlines())
    assert main(gradcam_args(slide, tmp_path / "t.png", 320, 240)) == 0
    assert "not tissue" not in capsys.readouterr().err


def test_gradcam_png_is_written_atomically(tmp_path, capsys, fake_gradcam, monkeypatch):
    import errno

    from idc_viewer.engine import figures

    slide = make_slide(tmp_path / "s.tiff")
    out = tmp_path / "g.png"
    out.write_bytes(b"the previous figure")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(figures.os, "fsync", full)
    assert main(gradcam_args(slide, out, 320, 240)) == 1
    assert "No space left" in one_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"the previous figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "s.tiff"]


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs")
def test_a_fifo_named_like_a_slide_does_not_hang(tmp_path, capsys):
    fifo = tmp_path / "pipe.svs"
    os.mkfifo(fifo)
    assert main(["info", str(fifo)]) == 1
    assert "not a regular file" in one_error_line(capsys.readouterr().err)


def test_implausible_stored_values_are_each_named():
    from idc_viewer.core.scale import implausible_mpp, resolve_mpp

    for raw, shown in (
        ("0", "0"),
        ("nan", "nan"),
        ("1e6", "1e+06"),
        ("-3", "-3"),
        ("abc", "'abc'"),
    ):
        props = {"openslide.mpp-x": raw, "openslide.mpp-y": raw}
        assert resolve_mpp(props, None)[0] is None  # never used as a scale
        assert implausible_mpp(props) == (
            f"the slide stores {shown} µm per pixel, which is implausible (accepted 0.01 to 100)"
        )
    assert implausible_mpp({}) is None
    assert implausible_mpp({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.25"}) is None
