"""``idc-viewer info``: a slide's format, levels and scale, and what the engine would do."""

from __future__ import annotations

import argparse
import sys

from idc_viewer.cli import inputs
from idc_viewer.cli.errors import EXIT_OK, UserError
from idc_viewer.core.errors import one_line
from idc_viewer.core.formatting import format_duration


def cmd_info(args: argparse.Namespace) -> int:
    """Print the slide's format, levels and µm/px, then the analysis plan."""
    from idc_viewer.core.slide import MissingMppError
    from idc_viewer.engine.plan import estimated_patches_per_s, plan_analysis

    patch_px, model_mpp, input_size, model_note = _model_geometry(args.model)
    with inputs.open_slide(args.slide, args.mpp) as slide:
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
            raise UserError(inputs.missing_mpp_message(args.slide, slide))
        print(f"µm/px:       {info.mpp:.4g} (from {info.mpp_source or 'unknown'})", file=out)
        try:
            plan = plan_analysis(
                slide,
                patch_px=patch_px,
                model_mpp=model_mpp,
                patches_per_s=estimated_patches_per_s(input_size),
            )
        except MissingMppError:  # (a SlideError, an impossible grid or unreadable tile, as is)
            raise UserError(inputs.missing_mpp_message(args.slide, slide)) from None
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
        print(f"  tissue:      none analysable: {one_line(plan.tissue.warning)}", file=out)
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
        model_path = inputs.resolve_model_path(path)
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
