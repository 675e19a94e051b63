"""The main window: slide view in the middle, panels in docks, a controller for each job.

It builds the widgets and the controllers and wires their signals; the jobs are the
controllers' (:mod:`~idc_viewer.qt.slide_controller` opening slides,
:mod:`~idc_viewer.qt.analysis_runner` analysing, :mod:`~idc_viewer.qt.inspection_controller`
the Grad-CAM inspector, :mod:`~idc_viewer.qt.export_controller` exporting,
:mod:`~idc_viewer.qt.model_controller` loading models). Every error becomes a dialog and a log
entry; the app carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.errors import one_line
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE
from idc_viewer.core.labels import model_label
from idc_viewer.core.store import ResultStore
from idc_viewer.engine.explain import Explanation, explain_cell
from idc_viewer.qt import window_memory
from idc_viewer.qt.about import install_about_action
from idc_viewer.qt.actions import build_actions, shortcut_rows
from idc_viewer.qt.analysis_runner import AnalysisRunner
from idc_viewer.qt.export_controller import ExportController
from idc_viewer.qt.gradcam_controller import GradCamLayerController, default_explainer
from idc_viewer.qt.inspection_controller import InspectionController
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.model_controller import ModelController, default_model_loader
from idc_viewer.qt.panels.analysis_panel import AnalysisPanel
from idc_viewer.qt.panels.display_panel import DisplayPanel
from idc_viewer.qt.panels.gradcam_dock import GradCamPanel
from idc_viewer.qt.panels.info_panel import SlideInfoPanel
from idc_viewer.qt.panels.model_panel import ModelPanel
from idc_viewer.qt.panels.overlay_panel import OverlayPanel
from idc_viewer.qt.panels.regions_panel import RegionsPanel
from idc_viewer.qt.panels.retrain_dialog import CommandFactory, training_command
from idc_viewer.qt.panels.shortcuts_dialog import ShortcutsDialog
from idc_viewer.qt.slide_controller import SlideController
from idc_viewer.qt.state import AppState
from idc_viewer.qt.status_readout import StatusReadout
from idc_viewer.qt.viewer import Minimap, SlideView
from idc_viewer.qt.viewer.marks_layer import MarksLayer
from idc_viewer.qt.viewer.model_badge import ModelBadge
from idc_viewer.qt.workers import WorkerPool

log = logging.getLogger(__name__)
APP_TITLE = "IDC Viewer"


def _stacked(*widgets: QWidget) -> QWidget:
    """A widget holding ``widgets`` top to bottom, with the free space below them."""
    page = QWidget()
    layout = QVBoxLayout(page)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return page


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
    model_loader, explain_fn, retrain_command, explainer_factory
        Injected for tests; default to the real engine functions (``explain_fn`` is
        :func:`~idc_viewer.engine.explain.explain_cell`; ``explainer_factory(model)`` builds the
        Grad-CAM of a model, for the inspector and the slide's Grad-CAM layer).
    batch_size : int
        Patches per analysis batch.

    Attributes
    ----------
    slides, analysis, inspection, exports, models
        The controllers (:class:`SlideController`, :class:`AnalysisRunner`,
        :class:`InspectionController`, :class:`ExportController`, :class:`ModelController`).
    """

    def __init__(
        self,
        state: AppState,
        store: ResultStore | None = None,
        settings: QSettings | None = None,
        runs_root: Path | None = None,
        model_loader: Callable[[str], Any] = default_model_loader,
        explain_fn: Callable[..., Explanation] = explain_cell,
        retrain_command: CommandFactory = training_command,
        batch_size: int = DEFAULT_BATCH_SIZE,
        explainer_factory: Callable[[Any], Any] = default_explainer,
    ) -> None:
        super().__init__()
        self.state = state
        self.settings = settings
        self.pool = WorkerPool(self)
        self.messages = Messenger(self)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._build_widgets(explainer_factory)
        self.analysis = AnalysisRunner(
            state, self.pool, self.messages, self._ask_scale, batch_size, self
        )
        self.exports = ExportController(state, self.view, self.messages, settings, self)
        self.models = ModelController(
            self.pool,
            self.messages,
            settings,
            model_loader,
            runs_root or Path.home() / "idc-viewer-runs",
            retrain_command,
            self,
        )
        self.inspection = InspectionController(
            state,
            self.view,
            self.marks,
            self.gradcam_panel,
            self.gradcam_dock,
            self.pool,
            self.messages,
            explain_fn,
            explainer_factory,
            self,
        )
        self.actions_ = build_actions(self, self._action_slots())
        self.slides = SlideController(
            state,
            self.view,
            self.minimap,
            self.actions_.recent_menu,
            self.messages,
            settings,
            store,
            self.analysis.cancel_and_wait,
            lambda: self.analysis.running,
            self,
        )
        self._add_habits()
        install_about_action(self, state, self.actions_.help_menu)
        self._wire()
        app = QApplication.instance()
        if app is not None:  # app.quit() without closing the window still joins the threads
            app.aboutToQuit.connect(self._stop_workers)

    @property
    def store(self) -> ResultStore | None:
        """Where analyses are kept and found again (None: nothing is stored)."""
        return self.slides.store

    @store.setter
    def store(self, store: ResultStore | None) -> None:
        self.slides.store = store  # the store of the sessions opened from now on
        if self.state.session is not None:
            self.state.session.store = store

    # -- construction -----------------------------------------------------------------------
    def _build_widgets(self, explainer_factory: Callable[[Any], Any]) -> None:
        state = self.state
        self.view = SlideView(parent=self)
        self.setCentralWidget(self.view)
        self.gradcam_layer = GradCamLayerController(self.view, state, explainer_factory, self)
        self.marks = MarksLayer()
        self.view.add_layer(self.marks)
        self.model_badge = ModelBadge(self.view)
        self.minimap = Minimap()
        self.info_panel = SlideInfoPanel(state)
        left = _stacked(self.minimap, self.info_panel)
        self._dock("Slide", left, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.analysis_panel = AnalysisPanel(state)
        self.overlay_panel = OverlayPanel(state)
        self.regions_panel = RegionsPanel(state)
        self.model_panel = ModelPanel(state)
        analysis_page = _stacked(self.analysis_panel, self.overlay_panel)
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
        self.readout = StatusReadout(state, self.view, self.statusBar())

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action_slots(self) -> dict[str, Callable[[], Any]]:
        return {
            "open": lambda: self.slides.choose_and_open(),
            "export": self.exports.choose_and_export,
            "export_png": self.exports.choose_and_export_png,
            "quit": self.close,
            "analyse": self.analysis.start,
            "cancel": self.analysis.cancel,
            "load_model": self.models.choose_and_load_model,
            "retrain": self.models.open_retrain_dialog,
            "fit": self.view.fit,
            "one_to_one": self.view.zoom_to_one_to_one,
            "toggle_overlay": self.overlay_panel.toggle_heatmap,
            "next_flagged": lambda: self.inspection.step_flagged(1),
            "prev_flagged": lambda: self.inspection.step_flagged(-1),
            "set_scale": lambda: self.slides.choose_scale(),
            "ruler": self._on_ruler_toggled,
            "shortcuts": self.show_shortcuts,
        }

    def _add_habits(self) -> None:
        """View menu panel toggles, remembered layout, exports enabled only when possible."""
        view_menu = self.actions_.view_menu
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        self.shortcuts_dialog: ShortcutsDialog | None = None
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
            self.messages.status("Measure: drag on the slide (M to stop).", 5000)

    def _on_ruler_changed(self, text: str) -> None:
        if text:
            self.messages.status(f"Measured: {text}")

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help › Keyboard shortcuts."""
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(shortcut_rows(self.actions_), self)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        return self.shortcuts_dialog

    def _wire(self) -> None:
        view, state, analysis = self.view, self.state, self.analysis
        view.viewport_changed.connect(self.minimap.set_viewport_l0)
        self.minimap.jump_requested.connect(view.center_on_l0)
        self.overlay_panel.opacity_changed.connect(view.set_overlay_opacity)
        self.overlay_panel.mode_changed.connect(self.gradcam_layer.set_mode)
        self.overlay_panel.gradcam_opacity_changed.connect(self.gradcam_layer.set_opacity)
        view.set_overlay_opacity(self.overlay_panel.opacity)
        self.gradcam_layer.set_mode(self.overlay_panel.mode)
        self.gradcam_layer.set_opacity(self.overlay_panel.gradcam_opacity)
        self.gradcam_layer.failed.connect(
            lambda exc: self.messages.status(f"Grad-CAM layer: {one_line(exc)}", 10_000)
        )
        self.model_badge.analyse_requested.connect(analysis.start)
        state.model_changed.connect(self._refresh_model_badge)
        state.heatmap_changed.connect(self._refresh_model_badge)
        state.slide_changed.connect(self._refresh_model_badge)
        state.threshold_changed.connect(view.set_threshold)
        view.set_threshold(state.threshold)
        state.map_mode_changed.connect(self._show_decision_map)
        state.model_changed.connect(self._show_decision_map)
        self.analysis_panel.run_requested.connect(analysis.start)
        self.analysis_panel.cancel_requested.connect(analysis.cancel)
        analysis.running_changed.connect(self.analysis_panel.set_running)
        analysis.message.connect(self.analysis_panel.show_message)
        analysis.progress.connect(self.analysis_panel.show_progress)
        analysis.heatmap_replaced.connect(self._show_heatmap)
        analysis.cells_changed.connect(view.update_heatmap_cells)
        # a message about the heatmap shown before (e.g. "Partial: ...") is stale once it runs
        analysis.stopped.connect(lambda _outcome: self.messages.clear_status())
        self.slides.slide_shown.connect(lambda name: self.setWindowTitle(f"{name} — {APP_TITLE}"))
        self.models.loaded.connect(self._switch_model)
        self.regions_panel.region_selected.connect(self.inspection.show_region)
        self.regions_panel.export_requested.connect(self.exports.choose_and_export)
        self.regions_panel.export_png_requested.connect(self.exports.choose_and_export_png)
        self.model_panel.load_requested.connect(self.models.choose_and_load_model)
        self.model_panel.retrain_requested.connect(self.models.open_retrain_dialog)

    # -- coordination -----------------------------------------------------------------------
    def _ask_scale(self) -> bool:
        return self.slides.ask_scale_for_analysis()

    def _show_heatmap(self) -> None:
        """Repaint the whole heatmap shown (its decision map and the pending veil)."""
        self.view.set_heatmap(self.state.decision_map())
        self.view.set_pending_mask(self.state.pending_mask())

    def _show_decision_map(self) -> None:
        """Repaint the heatmap as the map now decided on (context or patch, loaded model)."""
        if self.state.heatmap is not None:
            self._show_heatmap()

    def _switch_model(self, model: Any, path: str) -> None:
        """Switch everything on screen to ``model``: its stored analysis, or nothing."""
        self.analysis.cancel_and_wait()  # a running analysis is the old model's
        self.inspection.switch_model(model)
        self.state.set_model(model, path)
        label = model_label(model.spec.name, model.spec.model_hash)
        if self.state.slide is None:
            self.messages.status(f"Model {label} loaded.", 5000)
            return
        if not self.slides.show_stored_heatmap():
            self.state.set_heatmap(None)
            self.view.set_heatmap(None)
            self.messages.status(
                f"Model {label} loaded: it has not analysed this slide yet; "
                f"Analyse with {model.spec.name} (F5).",
                0,
            )
        self._refresh_model_badge()

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

    # -- events -----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        """Accept dragged files."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        """Open the first dropped file."""
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.slides.open_path(files[0])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Cancel the analysis and any worker, stop training, wait for threads, then close."""
        window_memory.save_window(self, self.settings)
        if self.models.retrain_dialog is not None:
            self.models.retrain_dialog.cancel()
        self._stop_workers()
        if self.state.session is not None:
            self.state.session.close()
        event.accept()

    def _stop_workers(self) -> None:
        """Cancel the analysis and every worker and wait for their threads (idempotent)."""
        self.analysis.cancel()
        if not self.pool.shutdown(30_000):
            log.warning("some workers did not stop within 30 s")
        self.gradcam_layer.shutdown()
        self.view.shutdown()
