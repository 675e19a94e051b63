"""The main window: slide view in the middle, panels in docks, workers for everything slow.

It composes widgets and wires signals; the work itself is the engine's (analysis, export)
and the panels' (display). Every error becomes a dialog and a log entry; the app carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.export import Region
from idc_viewer.core.results import ResultStore
from idc_viewer.core.slide import Slide, SlideError, open_slide, shrink_to, slide_fingerprint
from idc_viewer.qt import analysis_runner
from idc_viewer.qt.actions import build_actions, push_recent, read_recent, write_recent
from idc_viewer.qt.panels.analysis_panel import AnalysisPanel
from idc_viewer.qt.panels.gradcam_dock import GradCamPanel, GradCamView, compute_gradcam_view
from idc_viewer.qt.panels.info_panel import SlideInfoPanel
from idc_viewer.qt.panels.model_panel import ModelPanel
from idc_viewer.qt.panels.overlay_panel import OverlayPanel
from idc_viewer.qt.panels.regions_panel import RegionsPanel
from idc_viewer.qt.panels.retrain_dialog import CommandFactory, RetrainDialog, training_command
from idc_viewer.qt.state import AppState, flagged_cells, format_length_um, model_label, step_cell
from idc_viewer.qt.viewer import Minimap, SlideView
from idc_viewer.qt.viewer.slide_view import THUMBNAIL_MAX_SIDE
from idc_viewer.qt.workers import CallWorker, WorkerPool

log = logging.getLogger(__name__)
APP_TITLE = "IDC Viewer"
MINIMAP_THUMBNAIL_SIDE = 256
MODEL_FILTER = "IDC models (*.keras *.tflite *.spec.json);;All files (*)"
SLIDE_FILTER = ("Slides (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif *.dcm "
                "*.png *.jpg *.jpeg);;All files (*)")


def _default_model_loader(path: str) -> Any:
    from idc_viewer.ml.loading import load_model

    return load_model(Path(path))


class MainWindow(QMainWindow):
    """The IDC Viewer window.

    Parameters
    ----------
    state : AppState
    store : ResultStore, optional
        Where analyses are kept and found again (None: nothing is stored).
    settings : QSettings, optional
        Recent files; none are remembered without it.
    runs_root : Path
        Default parent folder of retraining runs.
    model_loader, gradcam_fn, retrain_command
        Injected for tests; default to the real engine functions.

    Signals
    -------
    slide_opened(str), analysis_stopped(str)  ("done" | "cancelled" | "failed" | "warning"),
    gradcam_shown(object), model_load_failed(str)
    """

    slide_opened = Signal(str)
    analysis_stopped = Signal(str)
    gradcam_shown = Signal(object)
    model_load_failed = Signal(str)

    def __init__(
        self,
        state: AppState,
        store: ResultStore | None = None,
        settings: QSettings | None = None,
        runs_root: Path | None = None,
        model_loader: Callable[[str], Any] = _default_model_loader,
        gradcam_fn: Callable[..., GradCamView] = compute_gradcam_view,
        retrain_command: CommandFactory = training_command,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        self.state = state
        self.store = store
        self.settings = settings
        self.runs_root = runs_root or Path.home() / "idc-viewer-runs"
        self._model_loader = model_loader
        self._gradcam_fn = gradcam_fn
        self._retrain_command = retrain_command
        self.pool = WorkerPool(self)
        self.analysis = analysis_runner.AnalysisRunner(self, state, self.pool, batch_size)
        self.retrain_dialog: RetrainDialog | None = None
        self._gradcam_request = 0
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._build_widgets()
        self.actions_ = build_actions(self, {
            "open": self.choose_and_open, "export": self.choose_and_export,
            "export_png": self.choose_and_export_png, "quit": self.close,
            "analyse": self.analysis.start, "cancel": self.analysis.cancel,
            "load_model": self.choose_and_load_model, "retrain": self.open_retrain_dialog,
            "fit": self.view.fit, "one_to_one": self.view.zoom_to_one_to_one,
            "toggle_overlay": self.overlay_panel.visible_box.toggle,
            "next_flagged": lambda: self.step_flagged(1),
            "prev_flagged": lambda: self.step_flagged(-1),
        })
        self._wire()
        self._refresh_recent_menu()

    # -- construction -----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        state = self.state
        self.view = SlideView(parent=self)
        self.setCentralWidget(self.view)
        self.minimap = Minimap()
        self.info_panel = SlideInfoPanel(state)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.minimap)
        left_layout.addWidget(self.info_panel)
        left_layout.addStretch(1)
        self._dock("Slide", left, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.analysis_panel = AnalysisPanel(state)
        self.overlay_panel = OverlayPanel(state)
        self.regions_panel = RegionsPanel(state)
        self.model_panel = ModelPanel(state)
        analysis_page = QWidget()
        page_layout = QVBoxLayout(analysis_page)
        page_layout.addWidget(self.analysis_panel)
        page_layout.addWidget(self.overlay_panel)
        page_layout.addStretch(1)
        self.tabs = QTabWidget()
        self.tabs.addTab(analysis_page, "Analysis")
        self.tabs.addTab(self.regions_panel, "Regions")
        self.tabs.addTab(self.model_panel, "Model")
        self._dock("Analysis", self.tabs, Qt.DockWidgetArea.RightDockWidgetArea)

        self.gradcam_panel = GradCamPanel()
        self.gradcam_dock = self._dock("Grad-CAM", self.gradcam_panel,
                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.gradcam_dock.hide()

        self.cursor_label = QLabel("")
        self.zoom_label = QLabel("")
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.statusBar().addPermanentWidget(self.zoom_label)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _wire(self) -> None:
        self.view.viewport_changed.connect(self.minimap.set_viewport_l0)
        self.view.viewport_changed.connect(self._on_viewport_changed)
        self.view.cursor_moved_l0.connect(self._on_cursor_moved)
        self.view.patch_clicked.connect(self._on_patch_clicked)
        self.minimap.jump_requested.connect(self.view.center_on_l0)
        self.overlay_panel.opacity_changed.connect(self.view.set_overlay_opacity)
        self.overlay_panel.visible_changed.connect(self.view.set_overlay_visible)
        self.view.set_overlay_opacity(self.overlay_panel.opacity)
        self.state.threshold_changed.connect(self.view.set_threshold)
        self.view.set_threshold(self.state.threshold)
        self.analysis_panel.run_requested.connect(self.analysis.start)
        self.analysis_panel.cancel_requested.connect(self.analysis.cancel)
        self.analysis.stopped.connect(self.analysis_stopped)
        self.regions_panel.region_selected.connect(self._on_region_selected)
        self.regions_panel.export_requested.connect(self.choose_and_export)
        self.regions_panel.export_png_requested.connect(self.choose_and_export_png)
        self.model_panel.load_requested.connect(self.choose_and_load_model)
        self.model_panel.retrain_requested.connect(self.open_retrain_dialog)
        self.gradcam_panel.step_requested.connect(self.step_flagged)

    # -- messages ---------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """Log and show an error; the app stays usable."""
        log.error("%s: %s", title, message)
        self.statusBar().showMessage(f"{title}: {message}", 10_000)
        QMessageBox.warning(self, title, message)

    # -- opening ----------------------------------------------------------------------------
    def choose_and_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open slide", "", SLIDE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str, mpp: float | None = None) -> bool:
        """Open a slide; asks for µm/px when the file has none. False (and a dialog) on error."""
        try:
            slide = open_slide(path, mpp=mpp)
            if slide.info.mpp is None:
                slide.close()
                value, ok = QInputDialog.getDouble(
                    self, "Scale unknown",
                    f"{Path(path).name} does not say how many µm one pixel is.\n"
                    "µm per pixel (0.25 for a 40× scan, 0.5 for 20×, 4.0 for the IDC patches):",
                    0.5, 0.01, 100.0, 4,
                )
                if not ok:
                    self.statusBar().showMessage("Opening cancelled: the scale is needed.", 5000)
                    return False
                slide = open_slide(path, mpp=value)
            fingerprint = slide_fingerprint(slide)
        except SlideError as exc:
            self.show_error("Cannot open slide", str(exc))
            return False
        except Exception as exc:  # unexpected reader failures: still a message, not a crash
            log.exception("opening %s", path)
            self.show_error("Cannot open slide", f"cannot open {Path(path).name}: {exc}")
            return False
        self.show_slide(slide, fingerprint, Path(path).name)
        self._remember(str(Path(path).resolve()))
        self.slide_opened.emit(path)
        return True

    def show_slide(self, slide: Slide, fingerprint: str | None = None, name: str = "") -> None:
        """Show an already opened slide (the window owns it from now on)."""
        self.analysis.cancel_and_wait()
        self.state.set_slide(slide, fingerprint or slide_fingerprint(slide))
        # one read for both: on a single-level slide a thumbnail reads the whole image (~0.5 s)
        thumbnail = slide.thumbnail(THUMBNAIL_MAX_SIDE)
        self.view.set_slide(slide, thumbnail)
        self.minimap.set_slide_thumbnail(shrink_to(thumbnail, MINIMAP_THUMBNAIL_SIDE),
                                         (slide.info.l0_width, slide.info.l0_height))
        self.view.set_heatmap(None)
        self.gradcam_dock.hide()
        self.setWindowTitle(f"{name or Path(slide.info.path).name} — {APP_TITLE}")
        self.show_stored_heatmap()

    def show_stored_heatmap(self) -> bool:
        """Show the stored analysis of the open slide (the current model's, else the latest)."""
        if self.store is None or self.state.fingerprint is None:
            return False
        found = analysis_runner.find_stored(self.store, self.state.fingerprint, self.state.model)
        if found is None:
            return False
        message = f"Stored heatmap shown (model {found.label})."
        if not found.by_loaded_model and self.state.model is not None:
            loaded = model_label(self.state.model.spec.name, self.state.model.spec.model_hash)
            if found.threshold is not None:
                self.state.borrow_threshold(found.threshold)
                flagged_at = f"flagged at its own threshold {found.threshold:.2f}"
            else:
                flagged_at = "its threshold is unknown: flags use the loaded model's"
            message = (f"Stored heatmap of another model shown: {found.label}, {flagged_at}. "
                       f"Analyse slide to score it with the loaded model {loaded}.")
        self.state.set_heatmap(found.heatmap, found.label)
        self.view.set_heatmap(found.heatmap)
        self.statusBar().showMessage(message, 0 if not found.by_loaded_model else 10_000)
        return True

    def _remember(self, path: str) -> None:
        if self.settings is None:
            return
        write_recent(self.settings, push_recent(read_recent(self.settings), path))
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        menu = self.actions_.recent_menu
        menu.clear()
        paths = read_recent(self.settings) if self.settings is not None else []
        for path in paths:
            action = menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        menu.setEnabled(bool(paths))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # -- model ------------------------------------------------------------------------------
    def choose_and_load_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", MODEL_FILTER)
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> CallWorker:
        """Load and validate a model off the GUI thread; on failure the old model stays."""
        worker = CallWorker("load-model", lambda: self._model_loader(path))
        worker.finished.connect(lambda model: self._on_model_loaded(model, path))
        worker.failed.connect(lambda message: self._on_model_failed(path, message))
        self.statusBar().showMessage(f"Loading model {Path(path).name}…")
        self.pool.start(worker)
        return worker

    def _on_model_loaded(self, model: Any, path: str) -> None:
        self.state.set_model(model, path)
        self.statusBar().showMessage(f"Model {model_label(model.spec.name, model.spec.model_hash)}"
                                     " loaded.", 5000)
        if self.state.heatmap is None:
            self.show_stored_heatmap()

    def _on_model_failed(self, path: str, message: str) -> None:
        self.show_error("Cannot load model", f"{Path(path).name}: {message}")
        self.model_load_failed.emit(message)

    def open_retrain_dialog(self) -> RetrainDialog:
        if self.retrain_dialog is None:
            dialog = RetrainDialog(self.runs_root, self._retrain_command, self)
            dialog.model_exported.connect(self.load_model)
            self.retrain_dialog = dialog
        self.retrain_dialog.show()
        self.retrain_dialog.raise_()
        return self.retrain_dialog

    # -- view feedback ----------------------------------------------------------------------
    def _on_cursor_moved(self, l0_x: float, l0_y: float) -> None:
        slide = self.state.slide
        mpp = slide.info.mpp if slide is not None else None
        if mpp:
            self.cursor_label.setText(
                f"x {format_length_um(l0_x * mpp)}, y {format_length_um(l0_y * mpp)}")
        else:
            self.cursor_label.setText(f"x {l0_x:.0f}, y {l0_y:.0f} px")

    def _on_viewport_changed(self, _rect: QRectF) -> None:
        zoom = self.view.view_px_per_l0()
        slide = self.state.slide
        mpp = slide.info.mpp if slide is not None else None
        text = f"zoom {zoom:.3g}×"
        if mpp:
            text += f" ({mpp / zoom:.3g} µm/screen px, ≈{10.0 * zoom / mpp:.3g}× objective)"
        self.zoom_label.setText(text)

    def _on_region_selected(self, region: Region) -> None:
        margin = 0.25 * max(region.l0_width, region.l0_height)
        self.view.zoom_to_l0_rect(region.l0_x - margin, region.l0_y - margin,
                                  region.l0_width + 2 * margin, region.l0_height + 2 * margin)

    # -- Grad-CAM ---------------------------------------------------------------------------
    def _on_patch_clicked(self, l0_x: float, l0_y: float) -> None:
        grid = self.analysis.current_grid()
        cell = grid.cell_at(l0_x, l0_y) if grid is not None else None
        if cell is not None:
            self.inspect_cell(cell)

    def inspect_cell(self, cell: tuple[int, int]) -> CallWorker | None:
        """Show the Grad-CAM dock for ``cell``; the computation runs in a worker."""
        slide, model, grid = self.state.slide, self.state.model, self.analysis.current_grid()
        if slide is None or grid is None:
            return None
        if model is None:
            self.show_error("Grad-CAM", "Load a model to explain a patch.")
            return None
        self.state.select_cell(cell)
        self._gradcam_request += 1
        request = self._gradcam_request
        self.gradcam_dock.show()
        self.gradcam_panel.show_loading(cell)
        fn = self._gradcam_fn
        worker = CallWorker("gradcam", lambda: fn(slide, grid, cell, model))
        worker.finished.connect(lambda view: self._on_gradcam_ready(request, view))
        worker.failed.connect(lambda message: self._on_gradcam_failed(request, message))
        self.pool.start(worker)
        return worker

    def _on_gradcam_ready(self, request: int, view: GradCamView) -> None:
        if request != self._gradcam_request:
            return  # the user clicked another patch meanwhile
        self.gradcam_panel.show_view(view)
        self.gradcam_shown.emit(view)

    def _on_gradcam_failed(self, request: int, message: str) -> None:
        if request == self._gradcam_request:
            self.gradcam_panel.show_error(message)
            self.show_error("Grad-CAM failed", message)

    def step_flagged(self, step: int) -> None:
        """Inspect the next (+1) or previous (-1) flagged patch, most probable first."""
        heatmap = self.state.heatmap
        if heatmap is None:
            return
        cell = step_cell(flagged_cells(heatmap, self.state.threshold),
                         self.state.selected_cell, step)
        if cell is None:
            self.statusBar().showMessage("No patch at or above the threshold.", 5000)
            return
        x, y, w, h = heatmap.grid.l0_rect(*cell)
        self.view.center_on_l0(x + w / 2, y + h / 2)
        self.inspect_cell(cell)

    # -- export -----------------------------------------------------------------------------
    def choose_and_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export results into folder")
        if folder:
            self.export_results(Path(folder))

    def export_results(self, folder: Path) -> list[Path]:
        """Write the engine's CSV/GeoJSON/provenance files of the current heatmap."""
        try:
            paths = analysis_runner.export_results(self.state, folder)
        except (OSError, ValueError) as exc:
            self.show_error("Export failed", str(exc))
            return []
        self.statusBar().showMessage(f"Exported {len(paths)} files to {folder}", 10_000)
        return paths

    def choose_and_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", "view.png",
                                              "PNG images (*.png)")
        if path:
            self.export_view_png(Path(path))

    def export_view_png(self, path: Path) -> bool:
        """Save the slide view as shown (tiles, heatmap, outlines, scale bar)."""
        if not self.view.grab().save(str(path), "PNG"):
            self.show_error("Export failed", f"cannot write {path}")
            return False
        self.statusBar().showMessage(f"View saved to {path}", 10_000)
        return True

    # -- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Cancel the analysis and any worker, stop training, wait for threads, then close."""
        if self.retrain_dialog is not None:
            self.retrain_dialog.cancel()
        self.analysis.cancel()
        if not self.pool.shutdown(30_000):
            log.warning("some workers did not stop within 30 s")
        self.view.shutdown()
        if self.state.slide is not None:
            self.state.slide.close()
        event.accept()
