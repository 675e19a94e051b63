"""Exit codes, the CLI's user error, SIGTERM as Ctrl-C, and the one way errors are printed.

Every user error is an :class:`~idc_viewer.core.errors.IdcViewerError` (the engine's and
core's own, or :class:`UserError` where the CLI adds what to do); :func:`error` prints it as one
``error: ...`` line on stderr.
"""

from __future__ import annotations

import sys

from idc_viewer.core.errors import IdcViewerError, one_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class UserError(IdcViewerError):
    """An error of the command's input, shown to the user as one line, without a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that it unwinds (and rolls back) the same way."""


def sigterm_as_interrupt(signum: int, frame: object) -> None:
    """A SIGTERM handler that raises :class:`Terminated`."""
    raise Terminated()


def error(message: object) -> None:
    """Print ``error: <message>`` (one line) on stderr."""
    print(f"error: {one_line(message)}", file=sys.stderr)


def warn(message: object) -> None:
    """Print ``warning: <message>`` (one line) on stderr."""
    print(f"warning: {one_line(message)}", file=sys.stderr)
