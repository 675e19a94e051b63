"""The ``idc-viewer`` command: analyze, gradcam, info, errors as one line, entry point."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from model_fakes import save_random_model

from idc_viewer.cli.inputs import expand_slides
from idc_viewer.cli.main import main
from idc_viewer.cli.progress import ProgressBar
from idc_viewer.core.jobs import Progress

# The header's text is pinned by tests/core/test_writers.py; here: the CLI writes those headers.
from idc_viewer.core.writers import PATCHES_HEADER, REGIONS_HEADER

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random native model (with its .tflite) saved through the model contract."""
    return save_random_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def wsi(shared_data: Path) -> Path:
    return shared_data / "wsi"


def header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def analyze_argv(
    source: Path, out: Path, model: Path, results: Path | None = None, *extra: str
) -> list[str]:
    """``idc-viewer analyze SOURCE --out OUT --model MODEL [--results-dir RESULTS] EXTRA...``."""
    argv = ["analyze", str(source), "--out", str(out), "--model", str(model)]
    if results is not None:
        argv += ["--results-dir", str(results)]
    return [*argv, *extra]


def gradcam_argv(slide: Path | str, out: Path, model: Path, *where: str) -> list[str]:
    """``idc-viewer gradcam SLIDE WHERE... -o OUT --model MODEL``."""
    return ["gradcam", str(slide), *where, "-o", str(out), "--model", str(model)]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# --------------------------------------------------------------------------- analyze


def test_analyze_folder_with_a_good_and_a_broken_slide(wsi, model_path, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(wsi / "CMU-1-Small-Region.svs", folder)
    shutil.copy(wsi / "broken-dicom.dcm", folder)
    out = tmp_path / "out"
    rc, _, err = run_cli(analyze_argv(folder, out, model_path, tmp_path / "results"), capsys)
    assert rc != 0
    assert "Traceback" not in err
    errors = error_lines(err)
    assert len(errors) == 1 and "broken-dicom.dcm" in errors[0]
    assert "1 of 2 slides analysed, 1 failed" in err

    patches_csv = out / "CMU-1-Small-Region.patches.csv"
    regions_csv = out / "CMU-1-Small-Region.regions.csv"
    assert tuple(header(patches_csv)) == PATCHES_HEADER
    assert tuple(header(regions_csv)) == REGIONS_HEADER
    assert (out / "CMU-1-Small-Region.regions.geojson").is_file()
    provenance = json.loads((out / "CMU-1-Small-Region.provenance.json").read_text())
    assert provenance["mpp"] == pytest.approx(0.499)
    assert provenance["threshold"] == 0.5
    assert provenance["model"]["hash"] and provenance["app_version"] and provenance["date"]
    with open(patches_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, "no tissue patch analysed on a real H&E slide"
    # Footprints in level-0 px: 50 px x 4.0 µm/px / 0.499 µm/px ~ 401 px.
    assert all(400 <= int(r["width"]) <= 402 for r in rows)
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    assert not list(out.glob("broken-dicom*"))


def test_analyze_resumes_from_the_results_store(wsi, model_path, tmp_path, capsys):
    slide = wsi / "CMU-1-Small-Region.svs"
    argv = analyze_argv(slide, tmp_path / "o", model_path, tmp_path / "r", "-q")
    assert run_cli(argv, capsys)[0] == 0
    first = (tmp_path / "o" / "CMU-1-Small-Region.patches.csv").read_text()
    assert run_cli(argv, capsys)[0] == 0
    assert (tmp_path / "o" / "CMU-1-Small-Region.patches.csv").read_text() == first


def test_analyze_threshold_changes_regions_not_patches(wsi, model_path, tmp_path, capsys):
    slide = wsi / "CMU-1-Small-Region.svs"
    for out, threshold in (("a", "0"), ("b", "1")):
        argv = analyze_argv(slide, tmp_path / out, model_path, tmp_path / "r", "-q")
        assert run_cli([*argv, "--threshold", threshold], capsys)[0] == 0
    name = "CMU-1-Small-Region"
    assert (tmp_path / "a" / f"{name}.patches.csv").read_text() == (
        tmp_path / "b" / f"{name}.patches.csv"
    ).read_text()
    with open(tmp_path / "a" / f"{name}.regions.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) >= 2  # threshold 0 flags every patch: >= 1 region
    prov = json.loads((tmp_path / "b" / f"{name}.provenance.json").read_text())
    assert prov["threshold"] == 1.0


def test_analyze_missing_mpp_then_with_mpp(wsi, model_path, tmp_path, capsys):
    slide = wsi / "tcga-cr-7395-01a-01-ts1.svs"
    argv = analyze_argv(slide, tmp_path / "o", model_path, tmp_path / "r", "-q")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 1
    assert len(error_lines(err)) == 1 and "--mpp" in err and "Traceback" not in err
    rc, _, err = run_cli([*argv, "--mpp", "0.5"], capsys)
    assert rc == 0, err
    assert tuple(header(tmp_path / "o" / "tcga-cr-7395-01a-01-ts1.patches.csv")) == PATCHES_HEADER


def test_analyze_non_he_slide_warns_without_heatmap(wsi, model_path, tmp_path, capsys):
    slide = wsi / "fluorescence-DAPI.ndpi"
    argv = analyze_argv(slide, tmp_path / "o", model_path, tmp_path / "r", "-q")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0
    assert any(line.startswith("warning: fluorescence-DAPI.ndpi") for line in err.splitlines())
    assert not list((tmp_path / "o").glob("*.csv"))
    prov = json.loads((tmp_path / "o" / "fluorescence-DAPI.provenance.json").read_text())
    assert "warning" in prov


def test_analyze_refuses_a_file_that_is_not_a_model(tmp_path, capsys):
    fake = tmp_path / "model.keras"
    fake.write_bytes(b"not a model")
    rc, _, err = run_cli(analyze_argv(tmp_path, tmp_path / "o", fake), capsys)
    assert rc == 1
    assert len(error_lines(err)) == 1 and "Traceback" not in err


def test_analyze_with_no_slides_in_folder(tmp_path, model_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run_cli(analyze_argv(empty, tmp_path / "o", model_path), capsys)
    assert rc == 1 and "no slide files" in err


# --------------------------------------------------------------------------- info


def test_info_on_an_aperio_slide(wsi, capsys):
    rc, out, err = run_cli(["info", str(wsi / "CMU-1-Small-Region.svs")], capsys)
    assert rc == 0, err
    assert "aperio" in out
    assert "2220 x 2967" in out
    assert "0.499" in out and "metadata" in out
    assert "tissue:" in out and "grid:" in out and "read level:" in out and "estimate:" in out


def test_info_without_mpp_asks_for_it_then_works_with_it(wsi, capsys):
    slide = str(wsi / "tcga-cr-7395-01a-01-ts1.svs")
    rc, out, err = run_cli(["info", slide], capsys)
    assert rc == 1
    assert "4443 x 3567" in out  # what is known is still shown
    assert len(error_lines(err)) == 1 and "--mpp" in err
    rc, out, err = run_cli(["info", slide, "--mpp", "0.25"], capsys)
    assert rc == 0, err
    assert "0.25 (from user)" in out
    assert "800.0 level-0 px" in out


def test_info_on_a_broken_file_is_one_line(wsi, capsys):
    rc, _out, err = run_cli(["info", str(wsi / "broken-dicom.dcm")], capsys)
    assert rc == 1
    assert err.strip().count("\n") == 0 and err.startswith("error: ")


# --------------------------------------------------------------------------- gradcam


def test_gradcam_writes_a_figure(wsi, model_path, tmp_path, capsys):
    out = tmp_path / "cam.png"
    slide = wsi / "CMU-1-Small-Region.svs"
    rc, _, err = run_cli(gradcam_argv(slide, out, model_path, "--x", "1100", "--y", "1500"), capsys)
    assert rc == 0, err
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 3 * 200 and image.shape[0] > 200
    assert "P(IDC) = " in err
    assert float(err.split("P(IDC) = ")[1].split()[0]) <= 1.0


def test_gradcam_outside_the_slide(wsi, model_path, tmp_path, capsys):
    slide = wsi / "CMU-1-Small-Region.svs"
    argv = gradcam_argv(slide, tmp_path / "x.png", model_path, "--x", "99999", "--y", "5")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 1 and "outside the slide" in err
    assert not (tmp_path / "x.png").exists()


def test_gradcam_region_paints_the_layer_over_tissue(wsi, model_path, tmp_path, capsys):
    from idc_viewer.core.patches import make_grid
    from idc_viewer.core.readers import open_slide
    from idc_viewer.core.tissue import detect_tissue
    from idc_viewer.engine.gradcam_layer import cells_in_l0_rect, footprint_px

    out, plain = tmp_path / "layer.png", tmp_path / "plain.png"
    x, y, w, h = 400, 1200, 1604, 1203  # about 4 x 3 patches of 401 level-0 px on this 20x slide
    region = [str(v) for v in (x, y, w, h)]
    slide_path = wsi / "CMU-1-Small-Region.svs"
    rc, _, err = run_cli(gradcam_argv(slide_path, out, model_path, "--region", *region), capsys)
    assert rc == 0, err
    assert "tissue patches" in err and "XNNPACK" not in err
    image = cv2.imread(str(out))[..., ::-1]
    assert image.shape[1] == w  # full resolution: one pixel per level-0 pixel
    with open_slide(wsi / "CMU-1-Small-Region.svs") as slide:
        raw = slide.read_region(x, y, 0, w, h)
        grid = make_grid(slide.info, 50, 4.0)
        tissue = detect_tissue(slide, grid).mask
    painted = image[:h]
    inside = np.zeros((h, w), bool)
    cells = cells_in_l0_rect(grid, (x, y, w, h), tissue)
    assert cells
    for cell in cells:
        x0, y0, fw, fh = footprint_px(grid, cell, x, y, 1.0)
        inside[max(0, y0) : y0 + fh, max(0, x0) : x0 + fw] = True
    changed = np.abs(painted.astype(int) - raw.astype(int)).sum(axis=2) > 0
    assert changed[inside].any()  # the tissue patches' Grad-CAM shows
    assert not changed[~inside].any()  # and nothing outside their exact footprints
    argv = gradcam_argv(slide_path, plain, model_path, "--region", *region, "--layers", "heatmap")
    rc2, _, _ = run_cli(argv, capsys)
    assert rc2 == 0 and cv2.imread(str(plain)).shape == cv2.imread(str(out)).shape


def test_gradcam_region_outside_or_missing(wsi, model_path, tmp_path, capsys):
    slide = str(wsi / "CMU-1-Small-Region.svs")
    out = tmp_path / "x.png"
    argv = gradcam_argv(slide, out, model_path, "--region", "90000", "0", "10", "10")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 1 and "does not overlap" in err and not (tmp_path / "x.png").exists()
    rc, _, err = run_cli(
        gradcam_argv(slide, out, model_path, "--region", "0", "0", "10", "-5"), capsys
    )
    assert rc == 1 and "must be positive" in err and not (tmp_path / "x.png").exists()
    rc, _, err = run_cli(gradcam_argv(slide, out, model_path), capsys)
    assert rc == 1 and "--region" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- plumbing


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "x.svs"])  # --out missing
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "x.svs", "--out", "o", "--threshold", "2"])
    assert exc.value.code == 2


def test_without_subcommand_and_without_the_gui(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "idc_viewer.app", None)  # as if the app were missing
    rc = main(["--demo"])
    assert rc == 2
    assert "viewer is not available" in capsys.readouterr().err


def test_expand_slides_takes_one_file_per_dicom_series(tmp_path):
    for name in ("a.svs", "b.dcm", "c.dcm", "notes.txt", ".hidden.svs"):
        (tmp_path / name).write_bytes(b"x")
    single = tmp_path / "single.ndpi"
    assert expand_slides([str(tmp_path), str(single)]) == [
        tmp_path / "a.svs",
        tmp_path / "b.dcm",
        single,
    ]


def test_progress_bar_format():
    line = ProgressBar.format("s.svs", Progress(done=50, total=200, rate_per_s=1234.4, eta_s=75))
    assert line.startswith("s.svs [######")
    assert "50/200 patches" in line and "1,234/s" in line and "ETA 1:15" in line


def test_subprocess_entry_point_uses_no_tensorflow_and_prints_no_traceback(
    wsi, model_path, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(wsi / "CMU-1-Small-Region.svs", folder)
    shutil.copy(wsi / "broken-dicom.dcm", folder)
    code = (
        "import sys\n"
        "from idc_viewer.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    args = analyze_argv(folder, tmp_path / "o", model_path, tmp_path / "r")
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "tensorflow imported: False" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1

    exe = Path(sys.executable).with_name("idc-viewer")
    entry = [str(exe)] if exe.exists() else [sys.executable, "-m", "idc_viewer"]
    proc = subprocess.run(
        [*entry, "info", str(wsi / "broken-dicom.dcm")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [*entry, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0 and "idc-viewer" in proc.stdout


def test_main_module_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "idc_viewer", "analyze", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and "--results-dir" in proc.stdout


def test_without_subcommand_starts_the_gui_with_its_arguments(monkeypatch):
    import types

    seen: list[list[str]] = []
    fake_app = types.ModuleType("idc_viewer.app")

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 0

    fake_app.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "idc_viewer.app", fake_app)
    assert main([]) == 0
    assert main(["--demo"]) == 0
    assert main(["slide.svs", "--model", "m.keras"]) == 0
    assert seen == [[], ["--demo"], ["slide.svs", "--model", "m.keras"]]
