"""The µm-per-pixel policy: where a slide's scale comes from and which values are plausible.

In order: a ``mpp`` given by the user; the file's ``openslide.mpp-x/y`` (averaged) when
plausible; ``10 / objective-power``; otherwise ``None``. Values outside ``[MPP_MIN, MPP_MAX]``
are treated as absent: TIFF writers store 72 dpi by default, which OpenSlide reports as
352.8 µm/px (``boxes.tiff``), and no slide is scanned that coarsely. Plain images carry no
trustworthy scale (their dpi is almost always a default), so their µm/px comes only from the
user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import openslide

from idc_viewer.core.slide import SlideError

__all__ = ["MPP_MAX", "MPP_MIN", "check_user_mpp", "implausible_mpp", "resolve_mpp", "valid_mpp"]

#: Plausible µm/px range; anything outside is treated as missing metadata.
MPP_MIN = 0.01
MPP_MAX = 100.0


def valid_mpp(value: float | None) -> float | None:
    """``value`` as a float when it is a plausible µm/px, else ``None``."""
    if value is None or not math.isfinite(value) or not MPP_MIN <= value <= MPP_MAX:
        return None
    return float(value)


def _float_prop(props: Mapping[str, str], key: str) -> float | None:
    raw = props.get(key)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def check_user_mpp(mpp: float) -> float:
    """A µm/px typed by the user, as a float; :class:`SlideError` when it is not plausible."""
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        raise SlideError(f"invalid µm/px {mpp!r}: not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SlideError(f"invalid µm/px {mpp!r}: must be a positive number")
    if not MPP_MIN <= value <= MPP_MAX:
        # 1e-6 would make a grid of 10^14 patches, 1e6 a patch of 0.0002 px
        raise SlideError(
            f"µm/px {value:g} is implausible: scanners give 0.1 to 1 µm/px (0.25 at 40x, "
            f"0.5 at 20x); accepted {MPP_MIN:g} to {MPP_MAX:g}"
        )
    return value


def resolve_mpp(
    props: Mapping[str, str], user_mpp: float | None
) -> tuple[float | None, str | None, float | None]:
    """Return ``(mpp, mpp_source, objective_power)`` following the module's scale policy."""
    power = _float_prop(props, openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    if power is not None and not (math.isfinite(power) and power > 0):
        power = None
    if user_mpp is not None:
        return check_user_mpp(user_mpp), "user", power
    values = [
        v
        for v in (
            valid_mpp(_float_prop(props, openslide.PROPERTY_NAME_MPP_X)),
            valid_mpp(_float_prop(props, openslide.PROPERTY_NAME_MPP_Y)),
        )
        if v is not None
    ]
    if values:
        return sum(values) / len(values), "metadata", power
    if power is not None:
        from_power = valid_mpp(10.0 / power)  # 40x ~ 0.25 µm/px, 20x ~ 0.5 µm/px
        if from_power is not None:
            return from_power, "objective-power", power
    return None, None, power


def implausible_mpp(props: Mapping[str, str]) -> str | None:
    """Say what a slide stores for µm/px when that value was rejected as implausible.

    ``None`` when the slide stores no µm/px (or a plausible one).
    """
    found: list[str] = []
    for key in (openslide.PROPERTY_NAME_MPP_X, openslide.PROPERTY_NAME_MPP_Y):
        raw = props.get(key)
        value = _float_prop(props, key)
        if raw is None or valid_mpp(value) is not None:
            continue
        text = f"{value:.4g}" if value is not None else repr(raw.strip()[:20])
        if text not in found:
            found.append(text)
    if not found:
        return None
    return (
        f"the slide stores {' x '.join(found)} µm per pixel, which is implausible "
        f"(accepted {MPP_MIN:g} to {MPP_MAX:g})"
    )
