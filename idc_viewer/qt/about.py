"""Help › About: the app's name and version, the model in use, the bundled components' licences.

It also says where OpenSlide's LGPL source is, as the LGPL asks of a binary distribution.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QMenu, QVBoxLayout, QWidget

from idc_viewer import __version__
from idc_viewer.core.bundled import icon_path
from idc_viewer.qt.state import AppState

APP_NAME = "IDC Viewer"


@dataclass(frozen=True)
class Component:
    """One bundled component: what it is, its distribution (for the version), its licence."""

    name: str
    distribution: str | None
    licence: str
    source: str = ""


#: What the installed wheel and the frozen build carry, with their licences.
COMPONENTS = (
    Component("IDC Viewer", "idc-viewer", "MIT"),
    Component(
        "OpenSlide (libopenslide, from openslide-bin)",
        "openslide-bin",
        "LGPL-2.1",
        "source of this exact build: https://github.com/openslide/openslide-bin/releases "
        "(OpenSlide itself: https://github.com/openslide/openslide)",
    ),
    Component(
        "openslide-python",
        "openslide-python",
        "LGPL-2.1",
        "https://github.com/openslide/openslide-python",
    ),
    Component(
        "Qt 6 / Qt for Python (PySide6)",
        "PySide6-Essentials",
        "LGPL-3.0",
        "https://code.qt.io and https://download.qt.io/official_releases/QtForPython/",
    ),
    Component("TensorFlow (retraining)", "tensorflow-cpu", "Apache-2.0"),
    Component("Keras", "keras", "Apache-2.0"),
    Component("LiteRT (ai-edge-litert, inference)", "ai-edge-litert", "Apache-2.0"),
    Component(
        "OpenCV (opencv-python-headless; its wheel carries FFmpeg, LGPL-2.1)",
        "opencv-python-headless",
        "Apache-2.0",
        "https://github.com/opencv/opencv-python",
    ),
    Component("Dask and distributed (analyze --workers)", "dask", "BSD-3-Clause"),
    Component("NumPy", "numpy", "BSD-3-Clause"),
    Component("Matplotlib", "matplotlib", "Matplotlib licence (PSF-based)"),
    Component("tifffile", "tifffile", "BSD-3-Clause"),
    Component("imagecodecs", "imagecodecs", "BSD-3-Clause"),
    Component("qimage2ndarray", "qimage2ndarray", "BSD-3-Clause"),
    Component("h5py", "h5py", "BSD-3-Clause"),
    Component("Python", None, "PSF-2.0"),
)


def component_version(component: Component) -> str:
    """The installed version of a component, or ``"-"`` when its metadata is not there."""
    if component.distribution is None:
        import platform

        return platform.python_version()
    try:
        return metadata.version(component.distribution)
    except metadata.PackageNotFoundError:
        return "-"


def model_line(state: AppState) -> str:
    """``name (hash)`` of the model in use, or that none is loaded."""
    model = state.model
    if model is None:
        return "no model loaded"
    return f"{model.spec.name} (hash {model.spec.model_hash})"


def about_html(state: AppState) -> str:
    """The About text (rich text for a QLabel)."""
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{html.escape(component_version(c))}</td>"
        f"<td>{html.escape(c.licence)}</td><td>{html.escape(c.source)}</td></tr>"
        for c in COMPONENTS
    )
    return (
        f"<h2>{APP_NAME} {html.escape(__version__)}</h2>"
        "<p>Invasive ductal carcinoma (IDC) heatmaps over breast whole-slide images, with "
        "Grad-CAM explanations. A research tool, not a diagnostic device.</p>"
        f"<p><b>Model:</b> {html.escape(model_line(state))}</p>"
        "<p><b>Bundled components and their licences</b></p>"
        "<table cellspacing='4'><tr><th align='left'>Component</th><th align='left'>Version</th>"
        f"<th align='left'>Licence</th><th align='left'>Source</th></tr>{rows}</table>"
        "<p>The LGPL components are dynamically linked and may be replaced by the user.</p>"
    )


class AboutDialog(QDialog):
    """Help › About."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"About {APP_NAME}")
        self.setWindowIcon(QIcon(str(icon_path())))
        self.label = QLabel(about_html(state))
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(buttons)


def install_about_action(window: QWidget, state: AppState, menu: QMenu) -> QAction:
    """Add *About IDC Viewer…* to ``menu`` (the window's Help menu); returns the action."""
    action = QAction(f"&About {APP_NAME}…", window)
    action.setMenuRole(QAction.MenuRole.AboutRole)

    def show() -> None:
        dialog = AboutDialog(state, window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()  # window-modal, without a nested event loop

    action.triggered.connect(show)
    menu.addAction(action)
    return action
