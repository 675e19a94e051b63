"""Exporting from the window: the analysis files of the heatmap shown, and the view as a PNG.

:class:`ExportController` asks where, asks before replacing an earlier export, writes, and says
where the files went (with an *Open folder* button).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from idc_viewer.core.errors import one_line
from idc_viewer.qt import window_memory
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer import SlideView

#: What export_all writes after ``<stem>.`` (asked before replacing).
EXPORT_SUFFIXES = ("patches.csv", "regions.csv", "regions.geojson", "provenance.json")


def export_results(state: AppState, folder: Path) -> list[Path]:
    """Write the engine's export files of the current heatmap into ``folder``."""
    from idc_viewer.core.export import export_all
    from idc_viewer.engine.outputs import provenance, slide_stem

    slide, heatmap, model = state.slide, state.decision_map(), state.model
    if slide is None or heatmap is None or state.heatmap is None:
        raise ValueError("Nothing to export: analyse a slide first.")
    stem = slide_stem(slide.info.path)
    if model is not None and state.heatmap_source.endswith(f"({model.spec.model_hash[:8]})"):
        info = provenance(slide, model, state.threshold, state.heatmap)
    else:  # a stored heatmap from another model: say only what is known
        info = {
            "app": "idc-viewer",
            "slide": {"path": slide.info.path},
            "model": {"label": state.heatmap_source},
            "mpp": slide.info.mpp,
        }
    # what "probability" (flags, regions) means in these files: the map the user looked at
    info["decision_map"] = "context" if state.context_active() else "patch"
    return export_all(folder, stem, heatmap, state.threshold, info, patch_heatmap=state.heatmap)


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
        """The open slide's file name up to its first dot (``slide`` when none)."""
        slide = self.state.slide
        return (Path(slide.info.path).name.split(".")[0] if slide is not None else "") or "slide"

    def choose_and_export(self) -> None:
        """File › Export results…."""
        folder = QFileDialog.getExistingDirectory(
            self._parent, "Export results into folder", window_memory.last_folder(self.settings)
        )
        if folder:
            window_memory.remember_folder(self.settings, folder)
            self.export_results(Path(folder))

    def export_results(self, folder: Path) -> list[Path]:
        """Write the engine's CSV/GeoJSON/provenance files of the current heatmap.

        Asks before replacing files of an earlier export; says where the files went, with an
        *Open folder* button.
        """
        if self.state.slide is not None and self.state.heatmap is not None:
            existing = sorted(
                p.name
                for p in Path(folder).glob(f"{self.slide_stem()}.*")
                if p.name.split(".", 1)[-1] in EXPORT_SUFFIXES
            )
            if existing and not self.messages.confirm(
                "Replace files?",
                f"{folder} already holds {', '.join(existing)}.\n\nReplace them with this export?",
            ):
                self.messages.status("Export cancelled: nothing was replaced.", 5000)
                return []
        try:
            paths = export_results(self.state, folder)
        except (OSError, ValueError) as exc:
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
