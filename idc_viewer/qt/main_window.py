"""The main window: slide view in the middle, panels in docks, workers for everything slow.

It composes widgets and wires signals; the work itself is the engine's (analysis, export)
and the panels' (display). Every error becomes a dialog and a log entry; the app carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.formatting import format_count, format_length_um
from idc_viewer.core.pixels import shrink_to
from idc_viewer.core.readers import open_slide
from idc_viewer.core.readers.formats import slide_file_filter
from idc_viewer.core.regions import Region
from idc_viewer.core.slide import Slide, SlideError
from idc_viewer.core.store import ResultStore
from idc_viewer.core.tissue import stain_warning
from idc_viewer.engine.session import find_stored
from idc_viewer.ml.gradcam import SharedGradCam
from idc_viewer.qt import analysis_runner, slide_scale, window_memory
from idc_viewer.qt.about import install_about_action
from idc_viewer.qt.actions import (
    build_actions,
    push_recent,
    read_recent,
    shortcut_rows,
    write_recent,
)
from idc_viewer.qt.gradcam_controller import GradCamLayerController, default_explainer
from idc_viewer.qt.panels.analysis_panel import AnalysisPanel
from idc_viewer.qt.panels.display_panel import DisplayPanel
from idc_viewer.qt.panels.gradcam_dock import GradCamPanel, GradCamView, compute_gradcam_view
from idc_viewer.qt.panels.info_panel import SlideInfoPanel
from idc_viewer.qt.panels.model_panel import ModelPanel
from idc_viewer.qt.panels.overlay_panel import OverlayPanel
from idc_viewer.qt.panels.regions_panel import RegionsPanel
from idc_viewer.qt.panels.retrain_dialog import CommandFactory, RetrainDialog, training_command
from idc_viewer.qt.panels.shortcuts_dialog import ShortcutsDialog
from idc_viewer.qt.state import AppState, flagged_cells, model_label, step_cell
from idc_viewer.qt.user_messages import explain_open_error
from idc_viewer.qt.viewer import Minimap, SlideView
from idc_viewer.qt.viewer.marks_layer import MarksLayer
from idc_viewer.qt.viewer.model_badge import ModelBadge
from idc_viewer.qt.viewer.slide_view import THUMBNAIL_MAX_SIDE
from idc_viewer.qt.workers import CallWorker, WorkerPool

log = logging.getLogger(__name__)
APP_TITLE = "IDC Viewer"
MINIMAP_THUMBNAIL_SIDE = 256
#: N / P zoom in until the inspected patch is this many screen pixels (the Grad-CAM layer's
#: threshold is 64), when it would be smaller.
INSPECT_PATCH_VIEW_PX = 96.0
MODEL_FILTER = "IDC models (*.keras *.tflite *.spec.json);;All files (*)"
#: What export_all writes after ``<stem>.`` (asked before replacing).
EXPORT_SUFFIXES = ("patches.csv", "regions.csv", "regions.geojson", "provenance.json")
SLIDE_FILTER = slide_file_filter()


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
    model_loader, gradcam_fn, retrain_command, explainer_factory
        Injected for tests; default to the real engine functions (``explainer_factory(model)``
        builds the Grad-CAM of a model, for the inspector and the slide's Grad-CAM layer).

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
        explainer_factory: Callable[[Any], Any] = default_explainer,
    ) -> None:
        super().__init__()
        self.state = state
        self.store = store
        self.settings = settings
        self.runs_root = runs_root or Path.home() / "idc-viewer-runs"
        self._model_loader = model_loader
        self._gradcam_fn = gradcam_fn
        self._retrain_command = retrain_command
        self._explainer_factory = explainer_factory
        self._inspector_cam: SharedGradCam | None = None  # the Grad-CAM of state.model
        self.pool = WorkerPool(self)
        self.analysis = analysis_runner.AnalysisRunner(self, state, self.pool, batch_size)
        self.retrain_dialog: RetrainDialog | None = None
        self._gradcam_request = 0
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._build_widgets()
        self.actions_ = build_actions(
            self,
            {
                "open": self.choose_and_open,
                "export": self.choose_and_export,
                "export_png": self.choose_and_export_png,
                "quit": self.close,
                "analyse": self.analysis.start,
                "cancel": self.analysis.cancel,
                "load_model": self.choose_and_load_model,
                "retrain": self.open_retrain_dialog,
                "fit": self.view.fit,
                "one_to_one": self.view.zoom_to_one_to_one,
                "toggle_overlay": self.overlay_panel.toggle_heatmap,
                "next_flagged": lambda: self.step_flagged(1),
                "prev_flagged": lambda: self.step_flagged(-1),
                "set_scale": self.choose_scale,
                "ruler": self._on_ruler_toggled,
                "shortcuts": self.show_shortcuts,
            },
        )
        self._add_habits()
        install_about_action(self, state, self.actions_.help_menu)
        self._wire()
        self._refresh_recent_menu()
        app = QApplication.instance()
        if app is not None:  # app.quit() without closing the window still joins the threads
            app.aboutToQuit.connect(self._stop_workers)

    # -- construction -----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        state = self.state
        self.view = SlideView(parent=self)
        self.setCentralWidget(self.view)
        self.gradcam_layer = GradCamLayerController(self.view, state, self._explainer_factory, self)
        self.marks = MarksLayer()
        self.view.add_layer(self.marks)
        self.model_badge = ModelBadge(self.view)
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
        self.gradcam_dock = self._dock(
            "Grad-CAM", self.gradcam_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.gradcam_dock.hide()

        self.display_panel = DisplayPanel()
        self.display_dock = self._dock(
            "Display", self.display_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.display_dock.hide()

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

    def _add_habits(self) -> None:
        """View menu panel toggles, remembered layout, exports enabled only when possible."""
        view_menu = self.actions_.view_menu
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        self.shortcuts_dialog: ShortcutsDialog | None = None
        self.export_box: QMessageBox | None = None
        window_memory.restore_window(self, self.settings)
        self.state.slide_changed.connect(self._update_actions)
        self.state.heatmap_changed.connect(self._update_actions)
        self.view.ruler_changed.connect(self._on_ruler_changed)
        self.display_panel.adjustments_changed.connect(self.view.set_display_adjustments)
        self._update_actions()

    def _update_actions(self) -> None:
        has_slide = self.state.slide is not None
        self.actions_.export.setEnabled(has_slide and self.state.heatmap is not None)
        self.actions_.export_png.setEnabled(has_slide)
        self.actions_.set_scale.setEnabled(has_slide)

    def _on_ruler_toggled(self) -> None:
        self.view.set_ruler_enabled(self.actions_.ruler.isChecked())
        if self.actions_.ruler.isChecked():
            self.statusBar().showMessage("Measure: drag on the slide (M to stop).", 5000)

    def _on_ruler_changed(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(f"Measured: {text}")

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help › Keyboard shortcuts."""
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(shortcut_rows(self.actions_), self)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        return self.shortcuts_dialog

    def _wire(self) -> None:
        self.view.viewport_changed.connect(self.minimap.set_viewport_l0)
        self.view.viewport_changed.connect(self._on_viewport_changed)
        self.view.cursor_moved_l0.connect(self._on_cursor_moved)
        self.view.patch_clicked.connect(self._on_patch_clicked)
        self.minimap.jump_requested.connect(self.view.center_on_l0)
        self.overlay_panel.opacity_changed.connect(self.view.set_overlay_opacity)
        self.overlay_panel.mode_changed.connect(self.gradcam_layer.set_mode)
        self.overlay_panel.gradcam_opacity_changed.connect(self.gradcam_layer.set_opacity)
        self.view.set_overlay_opacity(self.overlay_panel.opacity)
        self.gradcam_layer.set_mode(self.overlay_panel.mode)
        self.gradcam_layer.set_opacity(self.overlay_panel.gradcam_opacity)
        self.gradcam_layer.failed.connect(
            lambda message: self.statusBar().showMessage(f"Grad-CAM layer: {message}", 10_000)
        )
        self.model_badge.analyse_requested.connect(self.analysis.start)
        self.state.model_changed.connect(self._refresh_model_badge)
        self.state.heatmap_changed.connect(self._refresh_model_badge)
        self.state.slide_changed.connect(self._refresh_model_badge)
        self.state.cell_selected.connect(self._on_cell_selected)
        self.state.threshold_changed.connect(self.view.set_threshold)
        self.view.set_threshold(self.state.threshold)
        self.state.map_mode_changed.connect(self._show_decision_map)
        self.state.model_changed.connect(self._show_decision_map)
        self.analysis_panel.run_requested.connect(self.analysis.start)
        self.analysis_panel.cancel_requested.connect(self.analysis.cancel)
        self.analysis.stopped.connect(self.analysis_stopped)
        # a message about the heatmap shown before (e.g. "Partial: ...") is stale once it runs
        self.analysis.stopped.connect(lambda _outcome: self.statusBar().clearMessage())
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

    def confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (No by default)."""
        answer = QMessageBox.question(
            self,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # -- opening ----------------------------------------------------------------------------
    def choose_and_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open slide", window_memory.last_folder(self.settings), SLIDE_FILTER
        )
        if path:
            window_memory.remember_folder(self.settings, path)
            self.open_path(path)

    def open_path(self, path: str, mpp: float | None = None) -> bool:
        """Open and show a slide; False (and a one-line dialog, detail in the log) on error.

        A slide without µm/px opens too (viewing needs no scale): the scale the user gave this
        file before is used, else it is asked when the analysis needs it.
        """
        name = Path(path).name
        try:
            slide = open_slide(path, mpp=mpp or slide_scale.remembered_mpp(self.settings, path))
            # hashes the whole file once (~1.5 s/GB); cached by size/mtime in the store
            cache = self.store.fingerprint_dir if self.store is not None else None
            fingerprint = slide_fingerprint(slide, cache)
        except SlideError as exc:
            log.error("opening %s: %s", path, exc)
            self.show_error("Cannot open slide", explain_open_error(name, str(exc)))
            return False
        except Exception as exc:  # unexpected reader failures: still a message, not a crash
            log.exception("opening %s", path)
            self.show_error("Cannot open slide", explain_open_error(name, str(exc)))
            return False
        self.show_slide(slide, fingerprint, name)
        self._remember(str(Path(path).resolve()))
        if slide.info.mpp is None and self.state.slide_warning is None:
            self.statusBar().showMessage(
                f"{name} does not say how many µm one pixel is: Analyse asks for it "
                "(or Slide › Set scale…).",
                10_000,
            )
        self.slide_opened.emit(path)
        return True

    def show_slide(self, slide: Slide, fingerprint: str | None = None, name: str = "") -> None:
        """Show an already opened slide (the window owns it from now on)."""
        self.analysis.cancel_and_wait()
        # one read for both: on a single-level slide a thumbnail reads the whole image (~0.5 s)
        thumbnail = slide.thumbnail(THUMBNAIL_MAX_SIDE)
        warning = stain_warning(thumbnail)
        self.state.set_slide(slide, fingerprint or slide_fingerprint(slide), warning)
        self.view.set_slide(slide, thumbnail)
        self.minimap.set_slide_thumbnail(
            shrink_to(thumbnail, MINIMAP_THUMBNAIL_SIDE),
            (slide.info.l0_width, slide.info.l0_height),
        )
        self.view.set_heatmap(None)
        self.marks.patch_l0 = self.marks.region_l0 = None
        self.gradcam_panel.clear()
        self.gradcam_dock.hide()
        self.setWindowTitle(f"{name or Path(slide.info.path).name} — {APP_TITLE}")
        if warning is not None:
            log.warning("%s: %s", slide.info.path, warning)
            self.statusBar().showMessage(f"Not H&E? {warning}.", 0)
        self.show_stored_heatmap()

    def ask_scale_for_analysis(self) -> bool:
        """Ask for the open slide's µm/px (the analysis needs it); False when cancelled."""
        slide = self.state.slide
        if slide is None:
            return False
        value = slide_scale.ask_mpp(self, Path(slide.info.path).name, slide.info.mpp)
        if value is None:
            self.statusBar().showMessage(
                "Not analysed: the analysis needs the slide's scale.", 5000
            )
            return False
        return self.set_scale(value)

    def choose_scale(self) -> None:
        """Slide › Set scale…."""
        if self.state.slide is None:
            return
        if self.analysis.running:
            self.show_error("Set scale", "Cancel the analysis before changing the scale.")
            return
        self.ask_scale_for_analysis()

    def set_scale(self, mpp: float) -> bool:
        """Give the open slide a µm/px (remembered for its file); the view stays where it is."""
        slide = self.state.slide
        if slide is None:
            return False
        try:
            slide.set_user_mpp(mpp)
        except SlideError as exc:
            self.show_error("Set scale", str(exc))
            return False
        slide_scale.remember_mpp(self.settings, slide.info.path, mpp)
        self.state.notify_slide_info()
        self._on_viewport_changed(self.view.visible_l0_rect())
        self.view.update()
        if self.state.heatmap is not None and self.state.heatmap.grid.slide_mpp != mpp:
            self.view.set_heatmap(None)  # made at another scale: its cells no longer fit
            self.state.set_heatmap(None)
        self.show_stored_heatmap()
        self.statusBar().showMessage(
            f"Scale set to {mpp:g} µm/px (remembered for this file).", 5000
        )
        return True

    def show_stored_heatmap(self) -> bool:
        """Show the open slide's stored analysis by the loaded model, if there is one.

        Only the loaded model's: heatmap, threshold, flags, regions and Grad-CAM on screen are
        always one model's (with no model loaded, the latest analysis is shown).
        """
        if self.store is None or self.state.fingerprint is None:
            return False
        slide = self.state.slide
        found = find_stored(
            self.store,
            self.state.fingerprint,
            self.state.model,
            slide.info.mpp if slide is not None else None,
        )
        if found is None or (self.state.model is not None and not found.by_loaded_model):
            return False
        if self.state.model is None and found.threshold is not None:
            self.state.borrow_threshold(found.threshold)
        message = f"Stored heatmap shown (model {found.label})."
        self.state.set_heatmap(found.heatmap, found.label, found.tissue_mask)
        self.view.set_heatmap(self.state.decision_map())
        self.view.set_pending_mask(self.state.pending_mask())
        coverage = self.state.coverage()
        if coverage is not None and coverage[0] < coverage[1]:
            message += f" Partial: {format_count(*coverage)} — Analyse slide resumes."
        self.statusBar().showMessage(message, 10_000)
        return True

    def _refresh_model_badge(self) -> None:
        """Name the model on screen; offer to analyse when the slide has no analysis by it."""
        model = self.state.model
        if model is None:
            self.model_badge.show_model(self.state.heatmap_source, "no model loaded")
            return
        label = model_label(model.spec.name, model.spec.model_hash)
        self.gradcam_panel.set_model(label)
        if self.state.slide is not None and self.state.heatmap is None:
            self.model_badge.show_model(
                label, "no analysis of this slide", analyse_name=str(model.spec.name)
            )
        else:
            self.model_badge.show_model(label)

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
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", window_memory.last_folder(self.settings), MODEL_FILTER
        )
        if path:
            window_memory.remember_folder(self.settings, path)
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
        """Switch everything on screen to ``model``: its stored analysis, or nothing."""
        self.analysis.cancel_and_wait()  # a running analysis is the old model's
        self._inspector_cam = None
        self._gradcam_request += 1  # a Grad-CAM in flight is the old model's
        self.state.set_model(model, path)
        label = model_label(model.spec.name, model.spec.model_hash)
        self._warm_inspector(model)
        self.gradcam_panel.clear()
        self.gradcam_dock.hide()
        self.marks.region_l0 = None  # the old model's region and patch are no longer on screen
        self.state.select_cell(None)
        if self.state.slide is None:
            self.statusBar().showMessage(f"Model {label} loaded.", 5000)
            return
        shown = self.show_stored_heatmap()
        if not shown:
            self.state.set_heatmap(None)
            self.view.set_heatmap(None)
            self.statusBar().showMessage(
                f"Model {label} loaded: it has not analysed this slide yet; "
                f"Analyse with {model.spec.name} (F5).",
                0,
            )
        self._refresh_model_badge()

    def _warm_inspector(self, model: Any) -> None:
        """Build the inspector's Grad-CAM now, off the GUI thread: the first click is instant."""
        cam = SharedGradCam(model, self._explainer_factory)
        self._inspector_cam = cam
        worker = CallWorker(
            "gradcam-warm",
            lambda: cam.compute_batch(
                np.zeros((0, model.spec.patch_size_px, model.spec.patch_size_px, 3), np.uint8)
            ),
        )
        worker.failed.connect(lambda message: log.warning("Grad-CAM warm-up: %s", message))
        self.pool.start(worker)

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
                f"x {format_length_um(l0_x * mpp, fixed_decimals=True)}, "
                f"y {format_length_um(l0_y * mpp, fixed_decimals=True)}"
            )
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

    def _on_cell_selected(self, cell: tuple[int, int] | None) -> None:
        grid = self.analysis.current_grid()
        self.marks.patch_l0 = grid.l0_rect(*cell) if cell is not None and grid else None
        self.view.update()

    def _on_region_selected(self, region: Region) -> None:
        self.marks.region_l0 = (region.l0_x, region.l0_y, region.l0_width, region.l0_height)
        margin = 0.25 * max(region.l0_width, region.l0_height)
        self.view.zoom_to_l0_rect(
            region.l0_x - margin,
            region.l0_y - margin,
            region.l0_width + 2 * margin,
            region.l0_height + 2 * margin,
        )

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
        if self._inspector_cam is None or self._inspector_cam.model is not model:
            self._inspector_cam = SharedGradCam(model, self._explainer_factory)
        fn, explainer = self._gradcam_fn, self._inspector_cam
        worker = CallWorker("gradcam", lambda: fn(slide, grid, cell, explainer))
        worker.finished.connect(lambda view: self._on_gradcam_ready(request, view))
        worker.failed.connect(lambda message: self._on_gradcam_failed(request, message))
        self.pool.start(worker)
        return worker

    def _show_decision_map(self) -> None:
        """Repaint the heatmap as the map now decided on (context or patch, loaded model)."""
        if self.state.heatmap is not None:
            self.view.set_heatmap(self.state.decision_map())
            self.view.set_pending_mask(self.state.pending_mask())

    def _on_gradcam_ready(self, request: int, view: GradCamView) -> None:
        if request != self._gradcam_request:
            return  # the user clicked another patch meanwhile
        decided = self.state.decision_map() if self.state.context_active() else None
        context_p = decided.probability_at(*view.cell) if decided is not None else None
        self.gradcam_panel.show_view(view, context_probability=context_p)
        self.gradcam_shown.emit(view)

    def _on_gradcam_failed(self, request: int, message: str) -> None:
        if request == self._gradcam_request:
            self.gradcam_panel.show_error(message)
            self.show_error("Grad-CAM failed", message)

    def step_flagged(self, step: int) -> None:
        """Inspect the next (+1) or previous (-1) flagged patch, most probable first."""
        heatmap = self.state.decision_map()
        if heatmap is None:
            return
        cell = step_cell(
            flagged_cells(heatmap, self.state.threshold), self.state.selected_cell, step
        )
        if cell is None:
            self.statusBar().showMessage("No patch at or above the threshold.", 5000)
            return
        x, y, w, h = heatmap.grid.l0_rect(*cell)
        self.view.center_on_l0(x + w / 2, y + h / 2)
        patch_view_px = self.view.view_px_per_l0() * max(w, h)
        if patch_view_px < INSPECT_PATCH_VIEW_PX:  # too small to see: zoom in on it
            self.view.zoom_by(INSPECT_PATCH_VIEW_PX / max(patch_view_px, 1e-9))
        self.inspect_cell(cell)

    # -- export -----------------------------------------------------------------------------
    def _slide_stem(self) -> str:
        slide = self.state.slide
        return (Path(slide.info.path).name.split(".")[0] if slide is not None else "") or "slide"

    def choose_and_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Export results into folder", window_memory.last_folder(self.settings)
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
                for p in Path(folder).glob(f"{self._slide_stem()}.*")
                if p.name.split(".", 1)[-1] in EXPORT_SUFFIXES
            )
            if existing and not self.confirm(
                "Replace files?",
                f"{folder} already holds {', '.join(existing)}.\n\nReplace them with this export?",
            ):
                self.statusBar().showMessage("Export cancelled: nothing was replaced.", 5000)
                return []
        try:
            paths = analysis_runner.export_results(self.state, folder)
        except (OSError, ValueError) as exc:
            self.show_error("Export failed", str(exc))
            return []
        text = f"Exported {len(paths)} files to {folder}"
        self.statusBar().showMessage(text, 10_000)
        self._show_exported(folder, text)
        return paths

    def _show_exported(self, folder: Path, text: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Export done",
            text + ".",
            QMessageBox.StandardButton.Close,
            self,
        )
        open_button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
        open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        )
        box.setModal(False)
        box.open()  # non-blocking: the app stays usable
        self.export_box = box

    def choose_and_export_png(self) -> None:
        start = Path(window_memory.last_folder(self.settings) or ".") / f"{self._slide_stem()}.png"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export view as PNG", str(start), "PNG images (*.png)"
        )
        if path:
            window_memory.remember_folder(self.settings, path)
            self.export_view_png(Path(path))

    def export_view_png(self, path: Path) -> bool:
        """Save the slide view as shown (tiles, heatmap, outlines, scale bar); adds ``.png``."""
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        if not self.view.grab().save(str(path), "PNG"):
            self.show_error("Export failed", f"cannot write {path}")
            return False
        self.statusBar().showMessage(f"View saved to {path}", 10_000)
        return True

    # -- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Cancel the analysis and any worker, stop training, wait for threads, then close."""
        window_memory.save_window(self, self.settings)
        if self.retrain_dialog is not None:
            self.retrain_dialog.cancel()
        self._stop_workers()
        if self.state.slide is not None:
            self.state.slide.close()
        event.accept()

    def _stop_workers(self) -> None:
        """Cancel the analysis and every worker and wait for their threads (idempotent)."""
        self.analysis.cancel()
        if not self.pool.shutdown(30_000):
            log.warning("some workers did not stop within 30 s")
        self.gradcam_layer.shutdown()
        self.view.shutdown()
