"""Entry point of the frozen build (PyInstaller): ``idc-viewer`` and, for Retrain, ``idc-train``.

The frozen executable stands in for the Python interpreter, which a pathologist's machine may
not have: Model › Retrain… runs ``<sys.executable> -m training train ...``, so this executable
answers ``-m training ARGS`` (and the ``idc-train`` wrapper beside it) with the training CLI.
Everything else is the ``idc-viewer`` command (GUI, analyze, gradcam, info, --version).
"""

from __future__ import annotations

import multiprocessing
import sys


def main() -> int:
    # `analyze --workers N` starts Dask worker processes: in a frozen build each is this
    # executable again, which must run the worker, not the app
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if argv[:2] == ["-m", "training"]:
        from training.cli import main as train_main

        sys.argv = ["idc-train", *argv[2:]]
        return train_main(argv[2:])
    from idc_viewer.cli.main import main as viewer_main

    return viewer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
