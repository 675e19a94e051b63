"""``idc-viewer gradcam``: the Grad-CAM figure of one patch, or the layer over a region."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_viewer.cli import inputs
from idc_viewer.cli.errors import EXIT_OK, UserError, warn
from idc_viewer.core.native_stderr import native_stderr_silenced

if TYPE_CHECKING:
    import numpy as np

    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import Slide
    from idc_viewer.engine.session import SlideSession


def cmd_gradcam(args: argparse.Namespace) -> int:
    """Write the figure of ``--x/--y`` or of ``--region`` to ``-o``."""
    from idc_viewer.core.slide import MissingMppError
    from idc_viewer.engine.figures import write_png
    from idc_viewer.engine.session import SlideSession
    from idc_viewer.ml.gradcam import GradCam
    from idc_viewer.ml.spec import ModelContractError

    if args.region is None and (args.x is None or args.y is None):
        raise UserError("give a point (--x X --y Y) or a region (--region X Y W H)")
    model = inputs.load_model(args.model)
    try:
        with native_stderr_silenced():  # LiteRT's "Created XNNPACK delegate" INFO line
            explainer = GradCam.for_model(model)
    except ModelContractError as exc:
        raise UserError(f"cannot explain model {model.spec.name}: {exc}") from None
    with inputs.open_slide(args.slide, args.mpp) as slide:
        session = SlideSession(slide)
        try:
            grid = session.grid(model.spec)
        except MissingMppError:
            raise UserError(inputs.missing_mpp_message(args.slide, slide)) from None
        if args.region is not None:
            figure, title = _region(slide, grid, explainer, args)
        else:
            figure, title = _point(session, grid, explainer, args)
    try:
        write_png(Path(args.out), figure)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from None
    print(f"{args.out}: {title}", file=sys.stderr)
    return EXIT_OK


def _point(
    session: SlideSession, grid: PatchGrid, explainer: Any, args: argparse.Namespace
) -> tuple[np.ndarray, str]:
    """The figure of the patch at (``--x``, ``--y``), through the engine's explanation."""
    from idc_viewer.engine.figures import gradcam_figure

    info = session.info
    cell = grid.cell_at(args.x, args.y)
    if cell is None:
        raise UserError(
            f"point ({args.x:g}, {args.y:g}) lies outside the slide "
            f"({info.l0_width} x {info.l0_height} level-0 px)"
        )

    def background(tissue_fraction: float) -> None:
        warn(
            f"the patch at ({args.x:g}, {args.y:g}) is background, not tissue "
            f"({tissue_fraction:.0%} stained pixels): its score and map mean nothing"
        )

    found = session.explain(grid, cell, explainer, on_background=background)
    col, row = found.cell
    l0_x, l0_y, l0_w, l0_h = found.l0_rect
    title = (
        f"P(IDC) = {found.probability:.3f}  patch ({col}, {row}) at "
        f"x={l0_x} y={l0_y} ({l0_w}x{l0_h} level-0 px), {found.model_label}"
    )
    return gradcam_figure(found.patch, found.cam, found.overlay, title), title


def _region(
    slide: Slide, grid: PatchGrid, explainer: Any, args: argparse.Namespace
) -> tuple[np.ndarray, str]:
    """Every tissue patch's Grad-CAM over the level-0 rectangle ``--region``."""
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
