"""The ``idc-viewer`` argument parser: subcommands, options and argument types.

Usage errors print one ``error:`` line pointing at ``--help`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, TypeVar

from idc_viewer import __version__
from idc_viewer.cli.errors import EXIT_USAGE
from idc_viewer.core.errors import one_line
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE

COMMANDS = ("analyze", "gradcam", "info")


_Number = TypeVar("_Number", int, float)


def _checked(
    text: str,
    convert: Callable[[str], _Number],
    kind: str,
    valid: Callable[[_Number], bool],
    rule: str,
) -> _Number:
    """``convert(text)``, or an ``ArgumentTypeError``: "is not ``kind``" / "``rule``"."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"{text!r} {rule}")
    return value


def positive_float(text: str) -> float:
    """A number above 0, finite."""
    return _checked(
        text, float, "a number", lambda v: 0 < v < math.inf, "must be a positive number"
    )


def finite_float(text: str) -> float:
    """A finite number."""
    return _checked(text, float, "a number", math.isfinite, "is not a finite number")


def probability(text: str) -> float:
    """A number in [0, 1]."""
    return _checked(text, float, "a number", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return _checked(text, int, "an integer", lambda v: v >= 1, "must be at least 1")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="model file (.keras, .tflite or .spec.json; default: the bundled model)",
    )


def _add_mpp_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mpp",
        type=positive_float,
        metavar="M",
        help="µm per pixel of the slide's level 0 (overrides or supplies the metadata)",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line too (exit status 2), pointing at ``--help``."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


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
        type=probability,
        metavar="T",
        help="decision threshold for flagged regions (default: the model's)",
    )
    _add_mpp_arg(p_an)
    p_an.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"patches per CNN call (default {DEFAULT_BATCH_SIZE})",
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
        type=positive_int,
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
    p_gc.add_argument("--x", type=finite_float, help="level-0 x in pixels")
    p_gc.add_argument("--y", type=finite_float, help="level-0 y in pixels")
    p_gc.add_argument(
        "--region",
        type=finite_float,
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
        type=positive_int,
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
