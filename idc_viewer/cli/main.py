"""The ``idc-viewer`` entry point: the viewer without a subcommand, else the command's handler.

User errors are :class:`~idc_viewer.core.errors.IdcViewerError` and print one ``error:`` line
(exit status 1); Ctrl-C exits with 130 and SIGTERM with 143, after the command has kept what
was done. Anything else escaping is a bug: still one line (``IDC_VIEWER_DEBUG=1`` shows its
traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from idc_viewer.cli import analyze, gradcam, info
from idc_viewer.cli.args import COMMANDS, build_parser
from idc_viewer.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    error,
    sigterm_as_interrupt,
)
from idc_viewer.core.errors import IdcViewerError


def _handlers() -> dict[str, Callable[[argparse.Namespace], int]]:
    """The command handlers, looked up at call time."""
    return {"analyze": analyze.cmd_analyze, "gradcam": gradcam.cmd_gradcam, "info": info.cmd_info}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``idc-viewer`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in (*COMMANDS, "-h", "--help", "--version"):
        return _run_gui(args_list)
    args = build_parser().parse_args(args_list)
    with contextlib.suppress(ValueError, OSError):  # only possible in the main thread
        signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    try:
        return _handlers()[args.command](args)
    except IdcViewerError as exc:
        error(exc)
        return EXIT_FAILED
    except Terminated:
        print("\nterminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line; IDC_VIEWER_DEBUG=1 shows the traceback
        if os.environ.get("IDC_VIEWER_DEBUG"):
            raise
        error(
            f"internal error ({type(exc).__name__}: {exc}); please report it "
            "(IDC_VIEWER_DEBUG=1 shows the details)"
        )
        return EXIT_FAILED


def _run_gui(argv: list[str]) -> int:
    """Start the viewer (``idc_viewer.app.main``) with the GUI's own options."""
    import importlib

    try:
        # lazily: the headless commands must not pay for importing Qt
        app = importlib.import_module("idc_viewer.app")
    except ModuleNotFoundError as exc:
        if exc.name not in ("idc_viewer.app", "PySide6"):
            raise
        print(
            "error: the viewer is not available in this installation "
            f"({exc.name} is missing); the headless commands work: "
            "idc-viewer analyze|gradcam|info --help",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(app.main(argv) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
