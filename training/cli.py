"""``idc-train``: train, evaluate and export IDC models; assemble Kaggle patients into slides."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_viewer.core.errors import IdcViewerError

if TYPE_CHECKING:
    from training.slide_figures import SlideFigures


def _jpeg_quality(text: str) -> int:
    quality = int(text)
    if quality != 0 and not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError("JPEG quality must be 0 (off) or between 1 and 100")
    return quality


def _pooled_slides(figures: SlideFigures | None, storage: str) -> str:
    """Pooled slide F1 / BAC for ``storage`` in the deciding mode, or "-" when not scored."""
    pooled = figures.pooled if figures is not None else []
    mode = "context" if any(r.mode == "context" for r in pooled) else "cnn"
    for row in pooled:
        if row.storage == storage and row.mode == mode:
            return f"{row.figures.f1:.3f} / {row.figures.balanced_accuracy:.3f}"
    return "-"


def _parser() -> argparse.ArgumentParser:
    from idc_viewer.core.patches import DEFAULT_PATCH_MPP

    parser = argparse.ArgumentParser(prog="idc-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a model on a patch dataset, then evaluate and export it"
    )
    train.add_argument(
        "data", type=Path, help="dataset folder: <patient>/<0|1>/*.png or <split>/<0|1>/*.png"
    )
    train.add_argument(
        "--run-dir", type=Path, required=True, help="folder for checkpoints and outputs"
    )
    train.add_argument("--preset", choices=["native", "paper"], default="native")
    train.add_argument("--epochs", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument(
        "--balance",
        choices=["undersample", "resample", "class-weights", "none"],
        default="undersample",
        help="undersample: one fixed balanced subset (the paper); resample: a new balanced "
        "subset every epoch; class-weights: all patches, weighted",
    )
    train.add_argument(
        "--stain-jitter",
        type=float,
        default=0.0,
        help="hue jitter amplitude (0 = off, the paper's recipe)",
    )
    train.add_argument(
        "--hed-jitter",
        type=float,
        default=0.0,
        help="haematoxylin/eosin/DAB density jitter σ (0 = off, the paper's recipe; 0.05 light)",
    )
    train.add_argument(
        "--dihedral",
        action="store_true",
        help="also flip vertically and transpose (all 8 orientations; the paper: horizontal only)",
    )
    train.add_argument(
        "--jpeg-quality",
        type=_jpeg_quality,
        default=0,
        metavar="MIN",
        help="JPEG-recompress half the training patches at a quality between MIN and 100, as "
        "slide tiles are stored (0 = off, the paper's recipe)",
    )
    train.add_argument(
        "--recalibrate-bn",
        action="store_true",
        help="re-estimate BatchNorm statistics on un-augmented training patches before each "
        "validation (steadier early stopping; not in the paper)",
    )
    train.add_argument(
        "--keep-epoch-weights",
        action="store_true",
        help="keep every epoch's weights in <run-dir>/epochs/ (for idc-train average)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better validation loss before stopping (the paper: 5)",
    )
    train.add_argument(
        "--max-patients",
        type=int,
        default=None,
        help="use a random subset of patients (quick runs, CI)",
    )
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument(
        "--no-export", action="store_true", help="train only; skip evaluation/export"
    )
    train.add_argument(
        "--progress-json",
        action="store_true",
        help="print one JSON object per event on stdout (for the app)",
    )

    evaluate = sub.add_parser("evaluate", help="evaluate a finished run and export its model")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--progress-json", action="store_true")

    validate = sub.add_parser(
        "validate",
        help="validation-patient figures of trained runs, to choose one without seeing test",
    )
    validate.add_argument("run_dirs", type=Path, nargs="+")
    validate.add_argument(
        "--no-slides",
        action="store_true",
        help="skip scoring the complete validation patients as reassembled slides",
    )

    assemble = sub.add_parser(
        "assemble-slide", help="rebuild a Kaggle patient as a pyramidal TIFF with a truth CSV"
    )
    assemble.add_argument("patient_dir", type=Path)
    assemble.add_argument("out", type=Path)
    assemble.add_argument("--mpp", type=float, default=DEFAULT_PATCH_MPP)
    assemble.add_argument(
        "--lossless",
        action="store_true",
        help="deflate tiles instead of JPEG Q90: the slide's pixels equal the patches'",
    )

    rescore = sub.add_parser(
        "rescore-slides",
        help="score an exported model's complete test patients as slides again (lossless, "
        "JPEG, 20x) and update its report and card; the weights are not changed",
    )
    rescore.add_argument("spec", type=Path, help="the model's .spec.json")
    rescore.add_argument("data", type=Path, help="the Kaggle-layout dataset it was trained on")
    rescore.add_argument(
        "--choose-context",
        action="store_true",
        help="first choose the context stage on the complete validation patients' slides and "
        "write it into the spec (the weights are not changed)",
    )

    average = sub.add_parser(
        "average",
        help="average the weights of a run's best epochs (by validation loss) into a new run",
    )
    average.add_argument("run_dir", type=Path, help="a run trained with --keep-epoch-weights")
    average.add_argument("--out", type=Path, required=True, help="folder of the averaged run")
    average.add_argument("--top", type=int, default=5, help="how many best epochs to average")

    compare = sub.add_parser("compare", help="write a side-by-side card of exported models")
    compare.add_argument("specs", type=Path, nargs="+", help="model .spec.json files")
    compare.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``idc-train``; the exit status (1: a refused input, in one ``error:`` line)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = _parser().parse_args(argv)
    emit = _json_emitter() if getattr(args, "progress_json", False) else None
    try:
        return _run(args, emit)
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is kept; rerun with --resume", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        _fail(emit, f"{type(exc).__name__}: {exc}")
        return 1
    except IdcViewerError as exc:  # a bad dataset or model, in the user's words
        _fail(emit, str(exc))
        return 1


def _run(args: argparse.Namespace, emit: Any) -> int:
    commands: dict[str, Callable[[argparse.Namespace, Any], None]] = {
        "train": _train,
        "evaluate": _evaluate,
        "validate": _validate,
        "assemble-slide": _assemble,
        "rescore-slides": _rescore,
        "average": _average,
        "compare": _compare,
    }
    commands[args.command](args, emit)
    return 0


def _train(args: argparse.Namespace, emit: Any) -> None:
    from training.config import TrainConfig
    from training.train import train

    config = TrainConfig(
        data_dir=str(args.data),
        run_dir=str(args.run_dir),
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        balance=args.balance,
        stain_jitter=args.stain_jitter,
        hed_jitter=args.hed_jitter,
        dihedral=args.dihedral,
        jpeg_quality=args.jpeg_quality,
        recalibrate_bn=args.recalibrate_bn,
        keep_epoch_weights=args.keep_epoch_weights,
        early_stopping_patience=args.patience,
        max_patients=args.max_patients,
    )
    train(config, resume=args.resume, report=emit, log=_logger(emit))
    if not args.no_export:
        _evaluate(args, emit)


def _evaluate(args: argparse.Namespace, emit: Any) -> None:
    from training.evaluate import evaluate_run

    log = _logger(emit)
    result = evaluate_run(args.run_dir, log=log)
    exported = {"spec": str(result.spec_path), "metrics": asdict(result.metrics)}
    _event(emit, log, {"event": "exported", **exported})


def _validate(args: argparse.Namespace, emit: Any) -> None:
    from training.evaluate import validate_run

    rows = [
        validate_run(run_dir, slides=not args.no_slides, log=lambda message: None)
        for run_dir in args.run_dirs
    ]
    print(
        f"{'run':40} {'epochs':>8} {'thresh':>6} {'F1(IDC)':>7} {'BAC':>6} {'AUC':>6} "
        f"{'sigma':>5} {'slides F1 / BAC: lossless':>25} {'JPEG':>11} {'20x':>11}"
        "  (validation patients only; slides pooled, as the app decides)"
    )
    for row in rows:
        figures = row.validation_patients
        epochs = f"{row.best_epoch}/{row.epochs_run}{'' if row.finished else '+'}"
        choice = row.context_choice
        sigma = f"{choice.sigma_patches:5.2f}" if choice is not None else "    -"
        print(
            f"{row.run_dir[-40:]:40} {epochs:>8} {row.threshold:6.3f} "
            f"{figures.f1:7.3f} {figures.balanced_accuracy:6.3f} "
            f"{figures.roc_auc:6.3f} {sigma} "
            f"{_pooled_slides(row.validation_slides, 'lossless'):>25} "
            f"{_pooled_slides(row.validation_slides, 'JPEG Q90'):>11} "
            f"{_pooled_slides(row.validation_slides, '20x'):>11}"
        )


def _assemble(args: argparse.Namespace, emit: Any) -> None:
    from training.assemble_slide import assemble_slide

    slide = assemble_slide(args.patient_dir, args.out, mpp=args.mpp, lossless=args.lossless)
    print(
        f"wrote {slide.path} ({slide.width}x{slide.height} px, {slide.n_patches} patches) "
        f"and {slide.truth_csv}"
    )


def _rescore(args: argparse.Namespace, emit: Any) -> None:
    from training.slide_eval import rescore_slides

    figures = rescore_slides(
        args.spec, args.data, choose=args.choose_context, log=lambda message: None
    )
    for row in figures.per_slide:
        print(f"slide {row.patient} ({row.storage}, {row.mode}): F1 {row.figures.f1:.3f}")
    for pooled in figures.pooled:
        print(
            f"pooled ({pooled.storage}, {pooled.mode}): F1 {pooled.figures.f1:.3f}, "
            f"balanced accuracy {pooled.figures.balanced_accuracy:.3f}"
        )


def _average(args: argparse.Namespace, emit: Any) -> None:
    from training.average import average_run

    print(f"wrote {average_run(args.run_dir, args.out, top=args.top)}")


def _compare(args: argparse.Namespace, emit: Any) -> None:
    from training.compare import write_comparison

    print(f"wrote {write_comparison(args.specs, args.out)}")


def _json_emitter() -> Any:
    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    return emit


def _logger(emit: Any) -> Any:
    if emit is None:
        return print
    return lambda message: emit({"event": "log", "message": message})


def _event(emit: Any, log: Any, event: dict[str, Any]) -> None:
    if emit is not None:
        emit(event)
    else:
        log(f"{event['event']}: " + ", ".join(f"{k}={v}" for k, v in event.items() if k != "event"))


def _fail(emit: Any, message: str) -> None:
    if emit is not None:
        emit({"event": "error", "message": message})
    print(f"error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
