"""Opening a slide in the window: reading it, its scale, its stored analysis, recent files.

:class:`SlideController` opens a file as an engine
:class:`~idc_viewer.engine.session.SlideSession` (its fingerprint computed once, cached by the
store), puts it into the :class:`~idc_viewer.qt.state.AppState`, the view and the minimap,
shows the session's stored analysis by the loaded model, and asks for a µm/px when the slide
has none and the analysis needs one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from idc_viewer.core.errors import one_line
from idc_viewer.core.formatting import format_count
from idc_viewer.core.pixels import shrink_to
from idc_viewer.core.readers.formats import slide_file_filter
from idc_viewer.core.slide import Slide, SlideError
from idc_viewer.core.store import ResultStore
from idc_viewer.core.tissue import stain_warning
from idc_viewer.engine.session import SlideSession
from idc_viewer.qt import slide_scale, window_memory
from idc_viewer.qt.actions import push_recent, read_recent, write_recent
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.state import AppState
from idc_viewer.qt.user_messages import explain_open_error
from idc_viewer.qt.viewer import Minimap, SlideView
from idc_viewer.qt.viewer.slide_view import THUMBNAIL_MAX_SIDE

log = logging.getLogger(__name__)
MINIMAP_THUMBNAIL_SIDE = 256
SLIDE_FILTER = slide_file_filter()


class SlideController(QObject):
    """Opens slides into one window.

    Parameters
    ----------
    state : AppState
    view : SlideView
        Shows the slide and its heatmap.
    minimap : Minimap
        Shows the slide's thumbnail.
    recent_menu : QMenu
        File › Open recent, rebuilt from ``settings``.
    messages : Messenger
    settings : QSettings, optional
        Recent files, last folder and the scales given by the user.
    store : ResultStore, optional
        The store of the sessions opened: where analyses are kept and found (None: nowhere).
    stop_analysis : callable
        Cancels a running analysis and waits for it (before another slide is shown).
    analysis_running : callable
        True while an analysis runs (the scale cannot change then).
    parent : QWidget
        Parent of the dialogs.

    Signals
    -------
    slide_opened(str)
        A file was opened and shown (its path).
    slide_shown(str)
        A slide is on screen; its name (the window's title).
    """

    slide_opened = Signal(str)
    slide_shown = Signal(str)

    def __init__(
        self,
        state: AppState,
        view: SlideView,
        minimap: Minimap,
        recent_menu: QMenu,
        messages: Messenger,
        settings: QSettings | None,
        store: ResultStore | None,
        stop_analysis: Callable[[], None],
        analysis_running: Callable[[], bool],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.state, self.view, self.minimap = state, view, minimap
        self.recent_menu = recent_menu
        self.messages = messages
        self.settings = settings
        self.store = store
        self._stop_analysis = stop_analysis
        self._analysis_running = analysis_running
        self._parent = parent
        self.refresh_recent_menu()

    # -- opening ------------------------------------------------------------------------------
    def choose_and_open(self) -> None:
        """File › Open…."""
        path, _ = QFileDialog.getOpenFileName(
            self._parent, "Open slide", window_memory.last_folder(self.settings), SLIDE_FILTER
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
        mpp = mpp or slide_scale.remembered_mpp(self.settings, path)
        try:
            session = SlideSession.open(path, mpp=mpp, store=self.store)
            try:  # hashes the whole file once (~1.5 s/GB); cached by size/mtime in the store
                session.fingerprint  # noqa: B018 (computed now: a damaged file fails here)
            except BaseException:
                session.close()
                raise
        except SlideError as exc:
            log.error("opening %s: %s", path, exc)
            self.messages.show_error("Cannot open slide", explain_open_error(name, str(exc)))
            return False
        except Exception as exc:  # unexpected reader failures: still a message, not a crash
            log.exception("opening %s", path)
            self.messages.show_error("Cannot open slide", explain_open_error(name, str(exc)))
            return False
        self.show_session(session, name)
        self._remember(str(Path(path).resolve()))
        if session.info.mpp is None and self.state.slide_warning is None:
            self.messages.status(
                f"{name} does not say how many µm one pixel is: Analyse asks for it "
                "(or Slide › Set scale…).",
                10_000,
            )
        self.slide_opened.emit(path)
        return True

    def show_slide(self, slide: Slide, fingerprint: str | None = None, name: str = "") -> None:
        """Show an already opened slide (the window owns it from now on)."""
        self.show_session(SlideSession(slide, self.store, fingerprint, owns_slide=True), name)

    def show_session(self, session: SlideSession, name: str = "") -> None:
        """Show ``session``'s slide (the window closes it when another is shown)."""
        self._stop_analysis()
        slide = session.slide
        # one read for both: on a single-level slide a thumbnail reads the whole image (~0.5 s)
        thumbnail = slide.thumbnail(THUMBNAIL_MAX_SIDE)
        warning = stain_warning(thumbnail)
        self.state.set_session(session, warning)
        self.view.set_slide(slide, thumbnail)
        self.minimap.set_slide_thumbnail(
            shrink_to(thumbnail, MINIMAP_THUMBNAIL_SIDE),
            (slide.info.l0_width, slide.info.l0_height),
        )
        self.view.set_heatmap(None)
        self.slide_shown.emit(name or Path(slide.info.path).name)
        if warning is not None:
            log.warning("%s: %s", slide.info.path, warning)
            self.messages.status(f"Not H&E? {warning}.", 0)
        self.show_stored_heatmap()

    # -- scale --------------------------------------------------------------------------------
    def ask_scale_for_analysis(self) -> bool:
        """Ask for the open slide's µm/px (the analysis needs it); False when cancelled."""
        slide = self.state.slide
        if slide is None:
            return False
        value = slide_scale.ask_mpp(self._parent, Path(slide.info.path).name, slide.info.mpp)
        if value is None:
            self.messages.status("Not analysed: the analysis needs the slide's scale.", 5000)
            return False
        return self.set_scale(value)

    def choose_scale(self) -> None:
        """Slide › Set scale…."""
        if self.state.slide is None:
            return
        if self._analysis_running():
            self.messages.show_error("Set scale", "Cancel the analysis before changing the scale.")
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
            self.messages.show_error("Set scale", one_line(exc))
            return False
        slide_scale.remember_mpp(self.settings, slide.info.path, mpp)
        self.state.notify_slide_info()
        self.view.update()
        if self.state.heatmap is not None and self.state.heatmap.grid.slide_mpp != mpp:
            self.view.set_heatmap(None)  # made at another scale: its cells no longer fit
            self.state.set_heatmap(None)
        self.show_stored_heatmap()
        self.messages.status(f"Scale set to {mpp:g} µm/px (remembered for this file).", 5000)
        return True

    # -- stored analysis ----------------------------------------------------------------------
    def show_stored_heatmap(self) -> bool:
        """Show the open slide's stored analysis by the loaded model, if there is one.

        Only the loaded model's: heatmap, threshold, flags, regions and Grad-CAM on screen are
        always one model's (with no model loaded, the latest analysis is shown).
        """
        session = self.state.session
        if session is None or session.store is None:
            return False
        found = session.stored(self.state.model)
        if found is None or (self.state.model is not None and not found.by_loaded_model):
            return False
        if self.state.model is None and found.threshold is not None:
            self.state.borrow_threshold(found.threshold)
        message = f"Stored heatmap shown (model {found.label})."
        self.state.set_heatmap(found.heatmap, found.model, found.tissue_mask)
        self.view.set_heatmap(self.state.decision_map())
        self.view.set_pending_mask(self.state.pending_mask())
        coverage = self.state.coverage()
        if coverage is not None and coverage[0] < coverage[1]:
            message += f" Partial: {format_count(*coverage)} — Analyse slide resumes."
        self.messages.status(message, 10_000)
        return True

    # -- recent files -------------------------------------------------------------------------
    def _remember(self, path: str) -> None:
        if self.settings is None:
            return
        write_recent(self.settings, push_recent(read_recent(self.settings), path))
        self.refresh_recent_menu()

    def refresh_recent_menu(self) -> None:
        """Rebuild File › Open recent from the settings."""
        menu = self.recent_menu
        menu.clear()
        paths = read_recent(self.settings) if self.settings is not None else []
        for path in paths:
            action = menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        menu.setEnabled(bool(paths))
