"""Screenshots of the real app for the README: demo slide, analysis, Grad-CAM of an IDC patch,
and the Grad-CAM layer on a 20x slide.

Run by hand under a virtual X screen (needs ``apt-get install -y xvfb libxcb-icccm4
libxcb-keysyms1 libxcb-cursor0``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [SLIDE]

Writes ``docs/screenshots/{01-opened,02-heatmap,03-gradcam,04-regions,05-partial-resume,
06-ruler,07-model}.png``: the slide opened, the complete heatmap, Grad-CAM of the most probable
patch, the regions table, a partial analysis reopened (its un-analysed tissue hatched grey,
"… — Resume"; taken before the full run), the ruler over a flagged region and the Model tab.
Exits 1 when the demo slide or a model is missing, or a step does not finish within its time
limit.
When ``../shared/data/wsi/CMU-1-Small-Region.svs`` (a 20x slide) exists it also writes
``08-gradcam-layer-20x.png`` (the Grad-CAM layer zoomed in) and ``09-patch-enlarged-20x.png``
(the inspector's enlarged full-resolution patch with its map); without it those two are skipped
with a message (the committed ones stay).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SLIDE_20X = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"
)


def main() -> int:
    from PySide6.QtCore import QEventLoop, QPoint, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from idc_viewer.app import create_window, demo_slide_path
    from idc_viewer.core.readers import open_slide
    from idc_viewer.core.store import ResultStore
    from idc_viewer.engine.analysis import analyze
    from idc_viewer.ml.loading import default_model_path, load_model

    _app = QApplication.instance() or QApplication(sys.argv[:1])  # kept alive
    slide = sys.argv[1] if len(sys.argv) > 1 else str(demo_slide_path())
    # a fresh store: the screenshots always show an analysis by the model loaded now
    store_dir = Path(tempfile.mkdtemp(prefix="idc-screenshots-"))
    atexit.register(shutil.rmtree, store_dir, ignore_errors=True)
    settings_dir = Path(tempfile.mkdtemp(prefix="idc-screenshots-settings-"))
    atexit.register(shutil.rmtree, settings_dir, ignore_errors=True)
    # fresh settings too: a remembered layout would change the pictures
    window = create_window(
        store=ResultStore(store_dir),
        settings=QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat),
    )
    window.resize(1600, 1000)
    window.show()
    OUT.mkdir(parents=True, exist_ok=True)

    def wait(signal: object, timeout_s: float) -> list[object]:
        loop, got = QEventLoop(), []
        signal.connect(lambda *a: (got.extend(a or [True]), loop.quit()))  # type: ignore[attr-defined]
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        return got

    def settle(ms: int = 1500) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def shot(name: str) -> None:
        settle()
        window.grab().save(str(OUT / name))
        print("wrote", OUT / name)

    model = load_model(default_model_path())
    window.state.set_model(model, str(default_model_path()))
    if not window.slides.open_path(slide):
        return 1
    shot("01-opened.png")
    # A run stopped part-way (as a quit at 40 %), then the slide opened again.
    partial = open_slide(slide, mpp=window.state.slide.info.mpp if window.state.slide else None)
    runs = analyze(partial, model, window.store, batch_size=128)
    total = next(runs).progress.total  # type: ignore[union-attr]
    for update in runs:
        if update.progress.done >= 0.4 * total:  # type: ignore[union-attr]
            break
    runs.close()
    partial.close()
    if not window.slides.open_path(slide):
        return 1
    shot("05-partial-resume.png")
    window.analysis.start()
    if wait(window.analysis.stopped, 600) != ["done"]:
        print("analysis did not finish", file=sys.stderr)
        return 1
    shot("02-heatmap.png")
    window.inspection.step_flagged(1)  # the most probable IDC patch, as a click on it would
    if not wait(window.inspection.gradcam_shown, 120):
        print("Grad-CAM did not finish", file=sys.stderr)
        return 1
    shot("03-gradcam.png")
    window.tabs.setCurrentWidget(window.regions_panel)
    window.regions_panel.refresh()
    if window.regions_panel.table.rowCount():
        window.regions_panel.table.selectRow(0)
    shot("04-regions.png")
    window.gradcam_dock.hide()
    window.actions_.ruler.trigger()  # Measure on: a drag across the region
    view = window.view
    y = view.height() // 2
    x0, x1 = view.width() // 2 - view.width() // 5, view.width() // 2 + view.width() // 5
    QTest.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(x0, y))
    for x in range(x0, x1 + 1, 20):
        QTest.mouseMove(view, QPoint(x, y - (x - x0) // 4))
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(x1, y - (x1 - x0) // 4))
    shot("06-ruler.png")
    window.actions_.ruler.trigger()
    window.tabs.setCurrentWidget(window.model_panel)
    shot("07-model.png")
    status = gradcam_layer_shots(window, wait, shot)
    window.close()
    return status


def gradcam_layer_shots(window: object, wait: object, shot: object) -> int:
    """The Grad-CAM layer zoomed in on a 20x slide, and the inspector's enlarged patch."""
    from idc_viewer.core.flagged import flagged_cells

    w: Any = window
    if not SLIDE_20X.is_file():
        print(f"skipped the 20x screenshots: {SLIDE_20X} not found", file=sys.stderr)
        return 0
    if not w.slides.open_path(str(SLIDE_20X)):
        return 1
    if not w.state.heatmap:
        w.analysis.start()
        if wait(w.analysis.stopped, 600) != ["done"]:  # type: ignore[operator]
            print("analysis of the 20x slide did not finish", file=sys.stderr)
            return 1
    heatmap = w.state.heatmap
    cell = flagged_cells(heatmap, 0.0)[0]  # the most probable patch
    x, y, pw, ph = heatmap.grid.l0_rect(*cell)
    w.tabs.setCurrentIndex(0)
    w.overlay_panel.set_mode("both")
    view = w.view
    view.zoom_by(190.0 / max(pw, ph) / view.view_px_per_l0())  # a patch ~190 screen px
    view.center_on_l0(x + pw / 2, y + ph / 2)
    w.inspection.inspect_cell(cell)
    if not wait(w.gradcam_layer.filled, 120):  # type: ignore[operator]
        print("the Grad-CAM layer did not fill", file=sys.stderr)
        return 1
    shot("08-gradcam-layer-20x.png")  # type: ignore[operator]
    dialog = w.gradcam_panel.enlarge()
    if dialog is None:
        print("no patch to enlarge", file=sys.stderr)
        return 1
    dialog.resize(760, 860)
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(800, loop.quit)
    loop.exec()
    dialog.grab().save(str(OUT / "09-patch-enlarged-20x.png"))
    print("wrote", OUT / "09-patch-enlarged-20x.png")
    dialog.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
