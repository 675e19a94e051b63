"""Exporting from the window: the analysis files of the heatmap shown, and the view as a PNG.

:class:`ExportController` asks where, asks before replacing an earlier export, writes, and says
where the files went (with an *Open folder* button).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from idc_viewer.core.errors import IdcViewerError, one_line
from idc_viewer.core.export import SET_SUFFIXES
from idc_viewer.engine.outputs import slide_stem
from idc_viewer.engine.provenance import ModelRef
from idc_viewer.qt import window_memory
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer import SlideView

if TYPE_CHECKING:
    from idc_viewer.ml.spec import ModelSpec


def export_results(state: AppState, folder: Path) -> list[Path]:
    """Write the open session's export files of the heatmap shown into ``folder``.

    The same files and provenance as ``idc-viewer analyze``; flags and regions are those of
    the map the user looked at (the context map when active, else the patch map).
    """
    session, heatmap, model = state.session, state.decision_map(), state.model
    if session is None or heatmap is None or state.heatmap is None:
        raise ValueError("Nothing to export: analyse a slide first.")
    made_by: ModelSpec | ModelRef = state.heatmap_model or ModelRef("model", "")
    if model is not None and state.heatmap_by_loaded_model():
        made_by = model.spec
    decision_map = "context" if state.context_active() else "patch"
    written = session.export(
        folder, state.heatmap, state.threshold, made_by, decision=heatmap, decision_map=decision_map
    )
    return list(written.paths)


class ExportController(QObject):
    """File › Export of one window.

    Parameters
    ----------
    state : AppState
        The slide and heatmap exported.
    view : SlideView
        Saved as shown by *Export view as PNG*.
    messages : Messenger
    settings : QSettings, optional
        The last folder used.
    parent : QWidget
        Parent of the dialogs.
    """

    def __init__(
        self,
        state: AppState,
        view: SlideView,
        messages: Messenger,
        settings: QSettings | None,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.state, self.view = state, view
        self.messages, self.settings = messages, settings
        self._parent = parent
        self.export_box: QMessageBox | None = None

    def slide_stem(self) -> str:
        """The open slide's output name (:func:`~idc_viewer.engine.outputs.slide_stem`)."""
        slide = self.state.slide
        return slide_stem(slide.info.path) if slide is not None else "slide"

    def choose_and_export(self) -> None:
        """File › Export results…."""
        folder = QFileDialog.getExistingDirectory(
            self._parent, "Export results into folder", window_memory.last_folder(self.settings)
        )
        if folder:
            window_memory.remember_folder(self.settings, folder)
            self.export_results(Path(folder))

    def export_results(self, folder: Path) -> list[Path]:
        """Write the CSV/GeoJSON/provenance files of the heatmap shown (see :func:`export_results`).

        Asks before replacing files of an earlier export; says where the files went, with an
        *Open folder* button.
        """
        if self.state.slide is not None and self.state.heatmap is not None:
            stem = self.slide_stem()
            existing = sorted(
                stem + suffix
                for suffix in SET_SUFFIXES
                if (Path(folder) / (stem + suffix)).exists()
            )
            if existing and not self.messages.confirm(
                "Replace files?",
                f"{folder} already holds {', '.join(existing)}.\n\nReplace them with this export?",
            ):
                self.messages.status("Export cancelled: nothing was replaced.", 5000)
                return []
        try:
            paths = export_results(self.state, folder)
        except (OSError, ValueError, IdcViewerError) as exc:
            self.messages.show_error("Export failed", one_line(exc))
            return []
        text = f"Exported {len(paths)} files to {folder}"
        self.messages.status(text, 10_000)
        self._show_exported(folder, text)
        return paths

    def _show_exported(self, folder: Path, text: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Export done",
            text + ".",
            QMessageBox.StandardButton.Close,
            self._parent,
        )
        open_button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
        open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        )
        box.setModal(False)
        box.open()  # non-blocking: the app stays usable
        self.export_box = box

    def choose_and_export_png(self) -> None:
        """File › Export view as PNG…."""
        start = Path(window_memory.last_folder(self.settings) or ".") / f"{self.slide_stem()}.png"
        path, _ = QFileDialog.getSaveFileName(
            self._parent, "Export view as PNG", str(start), "PNG images (*.png)"
        )
        if path:
            window_memory.remember_folder(self.settings, path)
            self.export_view_png(Path(path))

    def export_view_png(self, path: Path) -> bool:
        """Save the slide view as shown (tiles, heatmap, outlines, scale bar); adds ``.png``."""
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        if not self.view.grab().save(str(path), "PNG"):
            self.messages.show_error("Export failed", f"cannot write {path}")
            return False
        self.messages.status(f"View saved to {path}", 10_000)
        return True
