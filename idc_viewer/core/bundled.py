"""Where the bundled files are: ``idc_viewer/resources/`` (models, demo slide, icon).

They are package data, found with :mod:`importlib.resources`, so the same code finds them in a
source checkout, an installed wheel and a PyInstaller build (whose importer maps the package to
its own folder). Installs are unpacked folders, so the resources are real files on disk.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The bundled models (``*.spec.json`` beside their ``.keras``/``.tflite``, cards, figures).
MODELS = "models"
#: The demo slide and its truth table.
DEMO = "demo"
#: The application icon (PNG and SVG).
ICONS = "icons"


def resources_dir() -> Path:
    """The package's ``resources`` folder as a real path.

    Raises
    ------
    FileNotFoundError
        If the package is not installed as files on disk (a zipped import cannot serve
        OpenSlide or LiteRT, which need real files).
    """
    root = files("idc_viewer") / "resources"
    if not isinstance(root, Path):
        raise FileNotFoundError(
            f"idc_viewer's resources are not files on disk ({root!r}); install it unpacked."
        )
    return root


def models_dir() -> Path:
    """``resources/models``: the bundled models."""
    return resources_dir() / MODELS


def demo_dir() -> Path:
    """``resources/demo``: the demo slide."""
    return resources_dir() / DEMO


def icon_path(suffix: str = ".png") -> Path:
    """The application icon, ``resources/icons/idc-viewer<suffix>`` (``.png`` or ``.svg``)."""
    return resources_dir() / ICONS / f"idc-viewer{suffix}"
