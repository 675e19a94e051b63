"""The one error type the app reports to its user, and the one way to make a message one line.

Every error a user can cause (a bad file, an odd µm/px, a wrong model, a full disk) is an
:class:`IdcViewerError`: the CLI catches that base alone and prints ``error: <str>``; the GUI's
workers relay the exception object, so a window can react to its type (ask for the scale on a
``MissingMppError``) and show its ``str`` in words. Anything else escaping is a bug.
"""

from __future__ import annotations

#: Longest message kept from a third-party exception folded into one of ours.
DEFAULT_MESSAGE_LIMIT_CHARS = 200


def one_line(value: object, limit_chars: int | None = None) -> str:
    """``value``'s text with all whitespace (newlines too) collapsed to single spaces.

    An exception without text is named by its type. ``limit_chars`` cuts long third-party
    messages (ending them with "...").
    """
    text = " ".join(str(value).split())
    if not text:
        text = type(value).__name__ if isinstance(value, BaseException) else "unknown error"
    if limit_chars is not None and len(text) > limit_chars:
        text = text[: limit_chars - 3] + "..."
    return text


class IdcViewerError(Exception):
    """Base of every error meant for the user; ``str`` is always a single line."""

    def __str__(self) -> str:
        """The message on one line (the type's name when empty)."""
        return one_line(super().__str__()) or type(self).__name__
