"""From the CNN's heatmap to the decision heatmap that flags, regions and exports use.

The store keeps only the CNN's own probabilities; the decision map is derived from them each
time with the loaded model's context stage (:mod:`idc_viewer.core.context`), so changing the
context parameters can never show a stale map, and a resumed analysis gives the same decision
map as an uninterrupted one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from idc_viewer.core.context import context_probabilities
from idc_viewer.core.heatmap import Heatmap

if TYPE_CHECKING:
    from idc_viewer.ml.spec import ModelSpec


def decision_heatmap(patch_heatmap: Heatmap, spec: ModelSpec) -> Heatmap:
    """The decision probabilities of ``spec``'s model: its context stage over the CNN map.

    A model without a context stage decides on the CNN's probabilities: the same heatmap is
    returned.
    """
    if spec.context is None:
        return patch_heatmap
    return Heatmap(
        patch_heatmap.grid,
        context_probabilities(patch_heatmap.probabilities, spec.context.sigma_patches),
    )
