"""``idc-viewer analyze``: slides in, CSV/GeoJSON/provenance out, serially or on a cluster."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from idc_viewer.cli import inputs
from idc_viewer.cli.errors import EXIT_FAILED, EXIT_OK, Terminated, UserError, error, warn
from idc_viewer.cli.progress import ProgressBar
from idc_viewer.core.errors import IdcViewerError, one_line

if TYPE_CHECKING:
    from idc_viewer.core.store import ResultStore
    from idc_viewer.engine.events import HeatmapBuilder
    from idc_viewer.engine.session import SlideSession
    from idc_viewer.ml.loading import LoadedModel


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyse every slide; a failing one is reported in one line and skipped."""
    from idc_viewer.engine.outputs import output_stems, slide_stem

    slides = inputs.expand_slides(args.slides)
    if not slides:
        raise UserError("no slide files found in " + ", ".join(args.slides))
    empty = [t for t in args.slides if Path(t).is_dir() and not inputs.expand_slides([t])]
    for folder in empty:  # a folder given among slides that holds none is not silently dropped
        error(f"{folder}: no slide files in this folder")
    if args.workers or args.scheduler:
        status = _analyze_cohort(slides, args)
        return EXIT_FAILED if empty else status
    model = inputs.load_model(args.model, predictor=True)
    out_dir = Path(args.out)
    _prepare_out_dir(out_dir)
    store = _open_store(args.results_dir)
    failed = len(empty)
    for path, stem in zip(slides, output_stems(slides), strict=True):
        if stem != slide_stem(path):
            print(
                f"note: {path}: another slide has the same name; files: {stem}.*", file=sys.stderr
            )
        try:
            _analyze_one(path, stem, model, store, out_dir, args)
        except IdcViewerError as exc:
            error(exc)
            failed += 1
    n = len(slides) + len(empty)
    summary = f"{n - failed} of {n} slide{'s' if n != 1 else ''} analysed"
    print(summary + (f", {failed} failed" if failed else ""), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and repair what a killed earlier run left half-replaced there."""
    from idc_viewer.core.export import recover_exports

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        notes = recover_exports(out_dir)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out_dir}: {exc}") from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _open_store(results_dir: str | None) -> ResultStore:
    from idc_viewer.core.app_dirs import default_results_dir
    from idc_viewer.core.store import ResultStore

    folder = Path(results_dir) if results_dir else default_results_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return ResultStore(folder, on_damaged=warn)
    except OSError as exc:
        raise UserError(f"cannot use results folder {folder}: {exc}") from None


def _analyze_cohort(slides: list[Path], args: argparse.Namespace) -> int:
    """``analyze --workers N`` / ``--scheduler ADDRESS``: see :mod:`idc_viewer.engine.cohort`."""
    from idc_viewer.core.app_dirs import default_results_dir
    from idc_viewer.engine.cohort import CohortOptions, run_cohort
    from idc_viewer.engine.outputs import output_stems

    model = inputs.load_model(args.model)  # checked here: a bad model fails before a cluster
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
    report = run_cohort(slides, output_stems(slides), options)
    return EXIT_FAILED if report.failed or report.csv_path is None else EXIT_OK


def _analyze_one(
    path: Path,
    stem: str,
    model: LoadedModel,
    store: ResultStore,
    out_dir: Path,
    args: argparse.Namespace,
) -> None:
    """Analyse one slide (resuming from the store) and export it as ``stem``."""
    from idc_viewer.core.writers import ExportError
    from idc_viewer.engine.session import SlideSession

    threshold = args.threshold if args.threshold is not None else model.spec.decision_threshold
    with inputs.open_slide(str(path), args.mpp) as slide:
        session = SlideSession(slide, store)
        built = _run(session, model, path, args)
        if not built.ended:
            raise UserError(f"{path}: the analysis produced nothing")
        try:
            if built.warning is not None:
                warning = one_line(built.warning)
                print(f"warning: {path.name}: {warning}; no heatmap written", file=sys.stderr)
                session.export_no_tissue(out_dir, model.spec, threshold, built.warning, stem=stem)
                return
            assert built.heatmap is not None
            written = session.export(out_dir, built.heatmap, threshold, model.spec, stem=stem)
        except (OSError, ExportError) as exc:
            raise UserError(f"{path}: {exc}") from None
        if not args.quiet:
            print(f"{path.name}: {written.summary}", file=sys.stderr)


def _run(
    session: SlideSession, model: LoadedModel, path: Path, args: argparse.Namespace
) -> HeatmapBuilder:
    """Fold the session's events into a heatmap, drawing the progress bar."""
    from idc_viewer.core.jobs import CancelToken
    from idc_viewer.core.slide import MissingMppError
    from idc_viewer.engine.events import Finished, HeatmapBuilder, NoTissue

    bar = ProgressBar(path.name, enabled=not args.quiet)
    cancel = CancelToken()
    built = HeatmapBuilder()
    try:
        with contextlib.closing(
            session.analyze(model, cancel, batch_size=args.batch_size)
        ) as events:  # closing stops the reader thread at once, even on Ctrl-C
            for event in events:
                built.apply(event)
                if not isinstance(event, NoTissue):
                    bar.update(event.progress, final=isinstance(event, Finished))
    except KeyboardInterrupt as exc:
        cancel.cancel()
        bar.clear()
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"{path.name}: {how}; what was done is kept, rerun to resume", file=sys.stderr)
        raise
    except MissingMppError:
        bar.clear()
        raise UserError(inputs.missing_mpp_message(str(path), session.slide)) from None
    except IdcViewerError:
        bar.clear()
        raise
    except OSError as exc:
        bar.clear()
        raise UserError(f"{path}: cannot read: {exc}") from None
    return built
