"""The ``idc-viewer`` command: the GUI (no subcommand) and the headless engine.

Subcommands
-----------
``analyze SLIDE... --out DIR``
    Analyse slides (folders expand to the slides inside them) and write, per slide,
    ``<stem>.patches.csv``, ``<stem>.regions.csv``, ``<stem>.regions.geojson`` and
    ``<stem>.provenance.json`` (``<stem>``: the file name minus its last suffix; a second
    slide of the same stem gets ``<stem>~2``), replaced as one set: all old or all new, the
    provenance naming each file's SHA-256. A slide that fails is reported in one line and
    skipped; the exit status is 1 if any slide failed. A slide where the tissue detector finds
    nothing that looks like H&E (empty glass, fluorescence) is reported as a warning: only its
    provenance (with the warning) is written, and it does not count as a failure. With
    ``--workers N`` or ``--scheduler ADDRESS`` the slides run on a Dask cluster and
    ``DIR/cohort.csv`` sums them up (:mod:`idc_viewer.engine.cohort`).
``gradcam SLIDE --x X --y Y -o OUT.png``
    Grad-CAM figure of the patch containing the level-0 point (X, Y).
``gradcam SLIDE --region X Y W H -o OUT.png``
    The viewer's Grad-CAM layer over a level-0 rectangle (every tissue patch's map).
``info SLIDE``
    Format, dimensions, pyramid levels, µm/px, and what the engine would do.

User errors (unreadable slide, missing µm/px, refused model) print one ``error: ...`` line
on stderr and give exit status 1; never a traceback. Ctrl-C during ``analyze`` keeps what was
done (a rerun resumes) and exits with 130; SIGTERM does the same and exits with 143.
"""

from __future__ import annotations

import os

# Before anything can import TensorFlow: silence its C++ and Python start-up logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
# OpenCV logs decoder complaints ("[ WARN:0] ... grfmt_png") on stderr; our error line says it.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

import argparse
import contextlib
import math
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from idc_viewer import __version__
from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.formatting import format_duration
from idc_viewer.core.native_stderr import native_stderr_silenced

if TYPE_CHECKING:
    from idc_viewer.core.jobs import Progress
    from idc_viewer.ml.loading import LoadedModel

COMMANDS = ("analyze", "gradcam", "info")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
#: Below this share of stained pixels a Grad-CAM patch is background (as the tissue detector's
#: per-cell threshold).
GRADCAM_MIN_TISSUE = 0.1


class UserError(IdcViewerError):
    """An error whose message is shown to the user as one line, without a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that it unwinds (and rolls back) the same way."""


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise Terminated()


# --------------------------------------------------------------------------- argument parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in [0, 1]")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="model file (.keras, .tflite or .spec.json; default: the bundled model)",
    )


def _add_mpp_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mpp",
        type=_positive_float,
        metavar="M",
        help="µm per pixel of the slide's level 0 (overrides or supplies the metadata)",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line too (exit status 2), pointing at ``--help``."""

    def error(self, message: str) -> Any:
        self.exit(
            EXIT_USAGE, f"error: {self.prog}: {_one_line(message)} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the subcommands (the GUI's own options are parsed by :func:`main`)."""
    parser = _Parser(
        prog="idc-viewer",
        description="IDC heatmaps over breast whole-slide images. Without a command, "
        "opens the viewer: idc-viewer [--demo] [--model PATH] [SLIDE].",
    )
    parser.add_argument("--version", action="version", version=f"idc-viewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_an = sub.add_parser(
        "analyze",
        help="analyse slides and export CSV, GeoJSON and provenance",
        description="Analyse slides (folders expand to the slide files inside them) and write "
        "<stem>.patches.csv, <stem>.regions.csv, <stem>.regions.geojson and "
        "<stem>.provenance.json into --out (<stem>: the file name minus its last suffix). "
        "A failing slide is reported and skipped (exit status 1). A slide with no "
        "H&E-looking tissue is a warning: only its provenance is written (exit status 0).",
    )
    p_an.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files or folders")
    p_an.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    _add_model_args(p_an)
    p_an.add_argument(
        "--threshold",
        type=_probability,
        metavar="T",
        help="decision threshold for flagged regions (default: the model's)",
    )
    _add_mpp_arg(p_an)
    p_an.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        metavar="N",
        help="patches per CNN call (default 256)",
    )
    p_an.add_argument(
        "--results-dir",
        metavar="D",
        help="where analyses are kept and resumed from (default: the viewer's results "
        "folder, shared with the GUI; $IDC_VIEWER_DATA_DIR/results when set)",
    )
    p_an.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    where = p_an.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="analyse the slides in parallel on a local Dask cluster of N worker processes "
        "(each gets cores/N LiteRT threads) and write DIR/cohort.csv",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="analyse the slides on a running Dask cluster (e.g. tcp://host:8786) whose workers "
        "see the same slide paths and --out; writes DIR/cohort.csv",
    )

    p_gc = sub.add_parser(
        "gradcam",
        help="Grad-CAM figure of one patch, or the Grad-CAM layer over a region",
        description="With --x/--y: one figure (patch, Grad-CAM map, overlay, probability) for "
        "the patch containing the level-0 point (X, Y). With --region X Y W H: the slide's "
        "level-0 rectangle with every tissue patch's Grad-CAM painted on its footprint, as the "
        "viewer's Grad-CAM layer shows it, above its colour scale.",
    )
    p_gc.add_argument("slide", metavar="SLIDE")
    p_gc.add_argument("--x", type=_finite_float, help="level-0 x in pixels")
    p_gc.add_argument("--y", type=_finite_float, help="level-0 y in pixels")
    p_gc.add_argument(
        "--region",
        type=_finite_float,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="level-0 rectangle (pixels) to paint the Grad-CAM layer over",
    )
    p_gc.add_argument(
        "--layers",
        choices=("gradcam", "heatmap", "both"),
        default="gradcam",
        help="with --region: which layers to paint (default gradcam)",
    )
    p_gc.add_argument(
        "--max-side",
        type=_positive_int,
        default=2048,
        metavar="PX",
        help="with --region: longest side of the picture (default 2048)",
    )
    p_gc.add_argument("-o", "--out", required=True, metavar="OUT.png", help="figure to write")
    _add_model_args(p_gc)
    _add_mpp_arg(p_gc)

    p_info = sub.add_parser(
        "info",
        help="describe a slide and what the engine would do with it",
        description="Format, dimensions, levels, µm/px, and the analysis plan "
        "(grid, read level, patch footprint, tissue patches, estimated time).",
    )
    p_info.add_argument("slide", metavar="SLIDE")
    _add_model_args(p_info)
    _add_mpp_arg(p_info)
    return parser


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``idc-viewer`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in (*COMMANDS, "-h", "--help", "--version"):
        return _run_gui(args_list)
    args = build_parser().parse_args(args_list)
    handlers = {"analyze": cmd_analyze, "gradcam": cmd_gradcam, "info": cmd_info}
    with contextlib.suppress(ValueError, OSError):  # only possible in the main thread
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        return handlers[args.command](args)
    except UserError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except Terminated:
        print("\nterminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line; IDC_VIEWER_DEBUG=1 shows the traceback
        if os.environ.get("IDC_VIEWER_DEBUG"):
            raise
        _error(
            f"internal error ({type(exc).__name__}: {exc}); please report it "
            "(IDC_VIEWER_DEBUG=1 shows the details)"
        )
        return EXIT_FAILED


def _error(message: str) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


def _run_gui(argv: list[str]) -> int:
    """Start the viewer (``idc_viewer.app.main``) with the GUI's own options."""
    import importlib

    try:
        # lazily: the headless commands must not pay for importing Qt
        app = importlib.import_module("idc_viewer.app")
    except ModuleNotFoundError as exc:
        if exc.name not in ("idc_viewer.app", "PySide6"):
            raise
        print(
            "error: the viewer is not available in this installation "
            f"({exc.name} is missing); the headless commands work: "
            "idc-viewer analyze|gradcam|info --help",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(app.main(argv) or 0)


# --------------------------------------------------------------------------- shared helpers


def _resolve_model_path(path: str | None) -> Path:
    from idc_viewer.ml.loading import default_model_path
    from idc_viewer.ml.spec import ModelContractError

    if path:
        return Path(path)
    try:
        return Path(default_model_path())
    except ModelContractError as exc:
        raise UserError(f"{exc} Or pass --model PATH.") from None


def _load_model(path: str | None, *, predictor: bool = False) -> LoadedModel:
    """Load and verify a model; with ``predictor``, also create and warm up its predictor."""
    import numpy as np

    from idc_viewer.ml.loading import load_model
    from idc_viewer.ml.spec import ModelContractError

    model_path = _resolve_model_path(path)
    try:
        model = load_model(model_path)
        if predictor:
            size = model.spec.patch_size_px
            with native_stderr_silenced():  # LiteRT's "Created XNNPACK delegate" INFO line
                model.predictor.predict(np.zeros((1, size, size, 3), np.uint8))
        return model
    except (ModelContractError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot load model {model_path}: {exc}") from None


def _open_slide(path: str, mpp: float | None) -> Any:
    from idc_viewer.core.readers import open_slide
    from idc_viewer.core.slide import SlideError

    try:
        return open_slide(path, mpp=mpp)
    except SlideError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot open {path}: {exc}") from None


def _missing_mpp_message(path: str, slide: Any = None) -> str:
    from idc_viewer.core.scale import implausible_mpp

    stored = implausible_mpp(slide.info.properties) if slide is not None else None
    what = stored or "the slide stores no µm per pixel (nor an objective power)"
    return f"{path}: {what}; pass --mpp M (e.g. --mpp 0.25 for a 40x scan, 0.5 for 20x)"


def expand_slides(paths: Sequence[str]) -> list[Path]:
    """Slide files named by ``paths``; a folder stands for the slide files directly inside it.

    The files of a DICOM series share a folder and form one slide, so a folder contributes
    at most one ``.dcm`` file (the first by name; OpenSlide finds the rest of the series).
    """
    from idc_viewer.core.readers.formats import SLIDE_SUFFIXES

    slides: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            slides.append(path)
            continue
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES and not p.name.startswith(".")
        )
        dicom = [p for p in files if p.suffix.lower() == ".dcm"]
        slides.extend(p for p in files if p.suffix.lower() != ".dcm")
        slides.extend(dicom[:1])
    return slides


def _output_stems(slides: Sequence[Path]) -> list[str]:
    """One output name per slide (see :func:`idc_viewer.engine.outputs.output_stems`)."""
    from idc_viewer.engine.outputs import output_stems

    return output_stems(slides)


class ProgressBar:
    """A one-line text progress bar (done/total, patches/s, ETA) on a stream."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._drawn = False

    @staticmethod
    def format(label: str, progress: Progress, width: int = 24) -> str:
        frac = progress.fraction
        filled = round(frac * width)
        eta = "--:--" if progress.eta_s is None else format_duration(progress.eta_s)
        return (
            f"{label} [{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total} "
            f"patches {progress.rate_per_s:,.0f}/s ETA {eta}"
        )

    def update(self, progress: Progress, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and (not self._tty or now - self._last < 0.1):
            return
        self._last = now
        line = self.format(self.label, progress)
        if self._tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self._drawn = not final
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self._tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


# --------------------------------------------------------------------------- analyze


def cmd_analyze(args: argparse.Namespace) -> int:
    from idc_viewer.core.app_dirs import default_results_dir
    from idc_viewer.core.export import recover_exports
    from idc_viewer.core.store import ResultStore
    from idc_viewer.core.writers import ExportError
    from idc_viewer.engine.outputs import slide_stem

    slides = expand_slides(args.slides)
    if not slides:
        raise UserError("no slide files found in " + ", ".join(args.slides))
    empty = [text for text in args.slides if Path(text).is_dir() and not expand_slides([text])]
    for folder in empty:  # a folder given among slides that holds none is not silently dropped
        _error(f"{folder}: no slide files in this folder")
    if args.workers or args.scheduler:
        status = _analyze_cohort(slides, args)
        return EXIT_FAILED if empty else status
    model = _load_model(args.model, predictor=True)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for note in recover_exports(out_dir):  # what a killed earlier run left half-replaced
            print(f"note: {note}", file=sys.stderr)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out_dir}: {exc}") from None
    except ExportError as exc:
        raise UserError(str(exc)) from None
    results_dir = Path(args.results_dir) if args.results_dir else default_results_dir()
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        store = ResultStore(results_dir, on_damaged=_warn)
    except OSError as exc:
        raise UserError(f"cannot use results folder {results_dir}: {exc}") from None

    failed = len(empty)
    for path, stem in zip(slides, _output_stems(slides), strict=True):
        if stem != slide_stem(path):
            print(
                f"note: {path}: another slide has the same name; files: {stem}.*", file=sys.stderr
            )
        try:
            _analyze_one(path, stem, model, store, out_dir, args)
        except UserError as exc:
            _error(str(exc))
            failed += 1
    n = len(slides) + len(empty)
    summary = f"{n - failed} of {n} slide{'s' if n != 1 else ''} analysed"
    print(summary + (f", {failed} failed" if failed else ""), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _analyze_cohort(slides: list[Path], args: argparse.Namespace) -> int:
    """``analyze --workers N`` / ``--scheduler ADDRESS``: see :mod:`idc_viewer.engine.cohort`."""
    from idc_viewer.core.app_dirs import default_results_dir
    from idc_viewer.engine.cohort import CohortError, CohortOptions, run_cohort

    model = _load_model(args.model)  # checked here: a bad model fails before a cluster starts
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out_dir}: {exc}") from None
    # a local cluster shares this machine's results folder; remote workers use their own
    results_dir = (
        str(Path(args.results_dir).absolute())
        if args.results_dir
        else str(default_results_dir())
        if args.workers
        else None
    )
    options = CohortOptions(
        out_dir=out_dir,
        model_hash=model.spec.model_hash,
        model_path=str(Path(args.model).resolve()) if args.model else None,
        results_dir=results_dir,
        threshold=args.threshold,
        mpp=args.mpp,
        batch_size=args.batch_size,
        workers=args.workers,
        scheduler=args.scheduler,
        quiet=args.quiet,
    )
    try:
        report = run_cohort(slides, _output_stems(slides), options)
    except CohortError as exc:
        raise UserError(str(exc)) from None
    return EXIT_FAILED if report.failed or report.csv_path is None else EXIT_OK


def _analyze_one(
    path: Path,
    stem: str,
    model: LoadedModel,
    store: Any,
    out_dir: Path,
    args: argparse.Namespace,
) -> None:
    from idc_viewer.core.jobs import CancelToken
    from idc_viewer.core.slide import MissingMppError, SlideError
    from idc_viewer.core.stored_analysis import ResultStoreError
    from idc_viewer.engine.analysis import analyze
    from idc_viewer.engine.outputs import write_outputs, write_warning_provenance

    threshold = args.threshold if args.threshold is not None else model.spec.decision_threshold
    with _open_slide(str(path), args.mpp) as slide:
        bar = ProgressBar(path.name, enabled=not args.quiet)
        cancel = CancelToken()
        last = None
        try:
            with contextlib.closing(
                analyze(slide, model, store, cancel, batch_size=args.batch_size)
            ) as updates:  # closing stops the reader thread at once, even on Ctrl-C
                for update in updates:
                    last = update
                    bar.update(update.progress, final=update.done)
        except KeyboardInterrupt as exc:
            cancel.cancel()
            bar.clear()
            how = "terminated" if isinstance(exc, Terminated) else "interrupted"
            print(f"{path.name}: {how}; what was done is kept, rerun to resume", file=sys.stderr)
            raise
        except MissingMppError:
            bar.clear()
            raise UserError(_missing_mpp_message(str(path), slide)) from None
        except SlideError as exc:
            bar.clear()
            raise UserError(str(exc)) from None
        except ResultStoreError as exc:
            bar.clear()
            raise UserError(str(exc)) from None
        except OSError as exc:
            bar.clear()
            raise UserError(f"{path}: cannot read: {exc}") from None
        if last is None:
            raise UserError(f"{path}: the analysis produced nothing")
        try:
            if last.tissue_warning:
                print(
                    f"warning: {path.name}: {_one_line(last.tissue_warning)}; no heatmap written",
                    file=sys.stderr,
                )
                write_warning_provenance(
                    out_dir, stem, slide, model, threshold, last.tissue_warning
                )
                return
            written = write_outputs(out_dir, stem, slide, model, last.heatmap, threshold)
        except OSError as exc:
            raise UserError(f"{path}: {exc}") from None
        if not args.quiet:
            print(f"{path.name}: {written.summary}", file=sys.stderr)


# --------------------------------------------------------------------------- gradcam


def cmd_gradcam(args: argparse.Namespace) -> int:
    from idc_viewer.core.patches import make_grid
    from idc_viewer.core.slide import MissingMppError, SlideError
    from idc_viewer.ml.gradcam import GradCam
    from idc_viewer.ml.spec import ModelContractError

    if args.region is None and (args.x is None or args.y is None):
        raise UserError("give a point (--x X --y Y) or a region (--region X Y W H)")
    model = _load_model(args.model)
    try:
        with native_stderr_silenced():  # LiteRT's "Created XNNPACK delegate" INFO line
            explainer = GradCam.for_model(model)
    except ModelContractError as exc:
        raise UserError(f"cannot explain model {model.spec.name}: {exc}") from None
    with _open_slide(args.slide, args.mpp) as slide:
        spec = model.spec
        try:
            grid = make_grid(slide.info, patch_px=spec.patch_size_px, model_mpp=spec.patch_mpp)
        except MissingMppError:
            raise UserError(_missing_mpp_message(args.slide, slide)) from None
        except SlideError as exc:
            raise UserError(str(exc)) from None
        if args.region is not None:
            figure, title = _gradcam_region(slide, grid, explainer, args)
        else:
            figure, title = _gradcam_point(slide, grid, explainer, args)
    from idc_viewer.engine.figures import write_png

    try:
        write_png(Path(args.out), figure)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from None
    print(f"{args.out}: {title}", file=sys.stderr)
    return EXIT_OK


def _gradcam_point(slide: Any, grid: Any, explainer: Any, args: argparse.Namespace) -> Any:
    from idc_viewer.core.patches import read_patch
    from idc_viewer.core.tissue import patch_tissue_fraction
    from idc_viewer.engine.figures import gradcam_figure
    from idc_viewer.ml.gradcam import overlay

    cell = grid.cell_at(args.x, args.y)
    if cell is None:
        raise UserError(
            f"point ({args.x:g}, {args.y:g}) lies outside the slide "
            f"({slide.info.l0_width} x {slide.info.l0_height} level-0 px)"
        )
    col, row = cell
    patch = read_patch(slide, grid, col, row)
    tissue_share = patch_tissue_fraction(patch)
    if tissue_share < GRADCAM_MIN_TISSUE:
        _warn(
            f"the patch at ({args.x:g}, {args.y:g}) is background, not tissue "
            f"({tissue_share:.0%} stained pixels): its score and map mean nothing"
        )
    result = explainer.compute(patch)
    l0_x, l0_y, l0_w, l0_h = grid.l0_rect(col, row)
    title = (
        f"P(IDC) = {result.probability:.3f}  patch ({col}, {row}) at "
        f"x={l0_x} y={l0_y} ({l0_w}x{l0_h} level-0 px), {explainer.model_label}"
    )
    return gradcam_figure(patch, result.cam, overlay(patch, result.cam), title), title


def _gradcam_region(slide: Any, grid: Any, explainer: Any, args: argparse.Namespace) -> Any:
    import numpy as np

    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.tissue import detect_tissue
    from idc_viewer.engine.gradcam_layer import (
        cells_in_l0_rect,
        explain_all,
        render_region,
        with_colour_scale,
    )

    x, y, w, h = args.region
    info = slide.info
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(info.l0_width, int(x + w)), min(info.l0_height, int(y + h))
    if w <= 0 or h <= 0:
        raise UserError(f"region width and height must be positive, got {w:g} x {h:g}")
    if x1 <= x0 or y1 <= y0:
        raise UserError(
            f"region ({x:g}, {y:g}, {w:g} x {h:g}) does not overlap the slide "
            f"({info.l0_width} x {info.l0_height} level-0 px)"
        )
    rect = (x0, y0, x1 - x0, y1 - y0)
    tissue = detect_tissue(slide, grid)
    cells = cells_in_l0_rect(grid, rect, tissue.mask)
    cams = explain_all(slide, grid, cells, explainer)
    probabilities = np.full(grid.shape, np.nan, np.float32)
    for cell, found in cams.items():
        probabilities[cell[1], cell[0]] = found.probability
    image = render_region(
        slide,
        grid,
        rect,
        cams,
        layers=args.layers,
        heatmap=Heatmap(grid, probabilities),
        max_side_px=args.max_side,
    )
    title = (
        f"{len(cams)} tissue patches of {explainer.model_label} in x={x0} y={y0} "
        f"{x1 - x0}x{y1 - y0} level-0 px"
    )
    caption = f"Grad-CAM ({args.layers}): low to high evidence for IDC, each patch to its max"
    return with_colour_scale(image, caption), title


# --------------------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    from idc_viewer.core.slide import MissingMppError, SlideError
    from idc_viewer.engine.plan import estimated_patches_per_s, plan_analysis

    patch_px, model_mpp, input_size, model_note = _model_geometry(args.model)
    with _open_slide(args.slide, args.mpp) as slide:
        info = slide.info
        out = sys.stdout
        print(f"file:        {info.path}", file=out)
        print(f"format:      {info.format}", file=out)
        print(f"dimensions:  {info.l0_width} x {info.l0_height} px (level 0)", file=out)
        print(f"levels:      {info.level_count}", file=out)
        for i, ((w, h), ds) in enumerate(
            zip(info.level_dimensions, info.level_downsamples, strict=True)
        ):
            print(f"  level {i}: {w} x {h} px, downsample {ds:g}", file=out)
        if info.objective_power:
            print(f"objective:   {info.objective_power:g}x", file=out)
        if info.mpp is None:
            print("µm/px:       unknown", file=out)
            raise UserError(_missing_mpp_message(args.slide, slide))
        print(f"µm/px:       {info.mpp:.4g} (from {info.mpp_source or 'unknown'})", file=out)
        try:
            plan = plan_analysis(
                slide,
                patch_px=patch_px,
                model_mpp=model_mpp,
                patches_per_s=estimated_patches_per_s(input_size),
            )
        except MissingMppError:
            raise UserError(_missing_mpp_message(args.slide, slide)) from None
        except SlideError as exc:  # an impossible grid, an unreadable tile
            raise UserError(str(exc)) from None
    grid = plan.grid
    print(f"analysis ({model_note}):", file=out)
    print(
        f"  patch:       {grid.patch_px} x {grid.patch_px} px at {grid.model_mpp:g} µm/px "
        f"= {plan.footprint_um:g} x {plan.footprint_um:g} µm, "
        f"{grid.l0_patch_size:.1f} level-0 px",
        file=out,
    )
    print(
        f"  grid:        {grid.cols} x {grid.rows} = {plan.cell_count} cells, "
        f"anchored at level-0 (0, 0)",
        file=out,
    )
    print(
        f"  read level:  {grid.read_level} ({plan.read_mpp:.4g} µm/px), "
        f"{plan.lvl_patch_px:.1f} px per patch resampled to {grid.patch_px} px (area)",
        file=out,
    )
    if plan.tissue.warning:
        print(f"  tissue:      none analysable: {_one_line(plan.tissue.warning)}", file=out)
        return EXIT_OK
    print(
        f"  tissue:      {plan.tissue_patches} patches "
        f"({100.0 * plan.tissue_patches / max(plan.cell_count, 1):.1f}% of the grid)",
        file=out,
    )
    estimate = (
        f"{max(plan.estimated_s, 1):.0f} s"
        if plan.estimated_s < 60
        else format_duration(plan.estimated_s)
    )
    print(f"  estimate:    ~{estimate} of CNN time on a 2-core CPU (plus start-up)", file=out)
    return EXIT_OK


def _model_geometry(path: str | None) -> tuple[int, float, int, str]:
    """Patch size, scale and input size of the model (read from its spec, no TensorFlow)."""
    from idc_viewer.core.patches import DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX
    from idc_viewer.ml.spec import ModelContractError, read_spec

    try:
        model_path = _resolve_model_path(path)
    except UserError:
        if path:
            raise
        paper = f"the paper's {DEFAULT_PATCH_PX} px at {DEFAULT_PATCH_MPP} µm/px"
        return DEFAULT_PATCH_PX, DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX, f"no model found: {paper}"
    try:
        spec = read_spec(model_path)
    except ModelContractError as exc:
        raise UserError(f"cannot read model {model_path}: {exc}") from None
    note = f"model {spec.name} {spec.model_hash}"
    return int(spec.patch_size_px), float(spec.patch_mpp), int(spec.input_size), note


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
