"""Screenshots of the real app for the README: demo slide, analysis, Grad-CAM of an IDC patch.

Run under a virtual X screen (needs ``apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1
libxcb-cursor0``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [SLIDE]

Writes ``docs/screenshots/{01-opened,02-heatmap,03-gradcam,04-regions,05-partial-resume,
06-ruler,07-model}.png``: the slide opened, the complete heatmap, Grad-CAM of the most probable
patch, the regions table, a partial analysis reopened (its un-analysed tissue hatched grey,
"… — Resume"; taken before the full run), the ruler over a flagged region and the Model tab.
Exits 1 when the demo slide or a model is missing, or a step does not finish within its time
limit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def main() -> int:
    from PySide6.QtCore import QEventLoop, QPoint, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from idc_viewer.app import create_window, demo_slide_path
    from idc_viewer.core.results import ResultStore
    from idc_viewer.core.slide import open_slide
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
    window = create_window(store=ResultStore(store_dir),
                           settings=QSettings(str(settings_dir / "settings.ini"),
                                              QSettings.Format.IniFormat))
    window.resize(1600, 1000)
    window.show()
    OUT.mkdir(parents=True, exist_ok=True)

    def wait(signal: object, timeout_s: float) -> list[object]:
        loop, got = QEventLoop(), []
        signal.connect(lambda *a: (got.extend(a), loop.quit()))  # type: ignore[attr-defined]
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
    if not window.open_path(slide):
        return 1
    shot("01-opened.png")
    # A run stopped part-way (as a quit at 40 %), then the slide opened again.
    partial = open_slide(slide, mpp=window.state.slide.info.mpp if window.state.slide else None)
    runs = analyze(partial, model, window.store, batch_size=128)
    total = next(runs).progress.total
    for update in runs:
        if update.progress.done >= 0.4 * total:
            break
    runs.close()
    partial.close()
    if not window.open_path(slide):
        return 1
    shot("05-partial-resume.png")
    window.analysis.start()
    if wait(window.analysis_stopped, 600) != ["done"]:
        print("analysis did not finish", file=sys.stderr)
        return 1
    shot("02-heatmap.png")
    window.step_flagged(1)  # the most probable IDC patch, as a click on it would
    if not wait(window.gradcam_shown, 120):
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
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
