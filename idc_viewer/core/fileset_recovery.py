"""Repair the file sets a dead process left half-replaced (see :mod:`idc_viewer.core.fileset`).

A commit works in ``.<stem>.idc-export`` beside the set, owned by one process (host and pid).
When that process is gone, :func:`recover` finishes its commit if the new seal was already in
place and rolls it back otherwise, so the folder shows all old or all new files again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from idc_viewer.core.errors import IdcViewerError, one_line

__all__ = [
    "COMPLETE_MARK",
    "OWNER_FILE",
    "WORK_SUFFIX",
    "FileSetError",
    "discard",
    "fsync_dir",
    "move",
    "owner_alive",
    "reason",
    "recover",
    "recover_one",
]

WORK_SUFFIX = ".idc-export"
_DONE_MARK = ".done-"
OWNER_FILE = "owner.json"
COMPLETE_MARK = ".complete"
#: A work folder without an owner file is being created right now unless it is older.
_OWNERLESS_GRACE_S = 60.0
#: A work folder of another host is taken as abandoned after this long.
_FOREIGN_STALE_S = 24 * 3600.0


class FileSetError(IdcViewerError):
    """The set could not be written or replaced; ``str(exc)`` is a one-line reason."""


def reason(exc: OSError) -> str:
    """A one-line reason for ``exc`` ("the disk is full" for ENOSPC and EDQUOT)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return one_line(exc.strerror or exc)


def fsync_dir(path: Path) -> None:
    """Make the renames in folder ``path`` durable (where the platform allows)."""
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(work: Path) -> tuple[bool, int | None]:
    """Whether the process that made ``work`` may still be using it, and its pid."""
    try:
        owner = json.loads((work / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - work.stat().st_mtime
        except OSError:
            return False, None
        return age < _OWNERLESS_GRACE_S, None
    if host != socket.gethostname():
        try:
            age = time.time() - work.stat().st_mtime
        except OSError:
            return False, pid
        return age < _FOREIGN_STALE_S, pid
    return _pid_alive(pid), pid


def move(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, replacing it (atomic on one file system)."""
    os.replace(src, dst)


def discard(work: Path) -> None:
    """Remove a finished or rolled-back work folder.

    The folder is renamed first: a crash in the middle of the deletion must not look like a
    half-done swap.
    """
    trash = work.with_name(f"{work.name}{_DONE_MARK}{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.replace(work, trash)
    except OSError:  # (a file held open on Windows) delete in place, in an order that keeps
        old = work / "old"  # the folder meaning "done": old files first, their mark last
        try:
            if old.is_dir():
                for path in old.iterdir():
                    if path.name != COMPLETE_MARK:
                        path.unlink()
                (old / COMPLETE_MARK).unlink(missing_ok=True)
        except OSError:
            return  # left for the next run's recover(), which reads it as finished
        trash = work
    shutil.rmtree(trash, ignore_errors=True)


def recover_one(directory: Path, work: Path, names: Sequence[str]) -> str | None:
    """Finish or roll back the swap a dead process left in ``work``; say what was done."""
    seal = names[0]
    old, new = work / "old", work / "new"
    stem_note = work.name[1 : -len(WORK_SUFFIX)]
    if not old.is_dir():
        discard(work)  # the swap never started: the live set is the old one, untouched
        return None
    if (old / COMPLETE_MARK).exists() and not (new / seal).exists():
        discard(work)  # the new seal was in place: the commit had finished
        return f"{stem_note}: finished an export that was interrupted after it was complete"
    if (old / COMPLETE_MARK).exists():
        # moving the new files in had begun: the live ones not left in new/ are new, remove them
        for name in names:
            if not (new / name).exists() and (directory / name).exists():
                (directory / name).unlink()
    for name in [*names[1:], seal]:
        if (old / name).exists():
            move(old / name, directory / name)
    fsync_dir(directory)
    discard(work)
    return f"{stem_note}: an interrupted export was rolled back; the previous files are kept"


def recover(directory: Path | str, suffixes: Sequence[str]) -> list[str]:
    """Repair every set in ``directory`` that a dead process left half-replaced.

    Also removes stale temporaries (``.<name>.<pid>.tmp`` of dead processes, deleted work
    folders). Returns one line per set repaired. Raises :class:`FileSetError` when a repair
    cannot be done (then the work folder, holding the old files, is kept).
    """
    folder = Path(directory)
    notes: list[str] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return notes
    for entry in entries:
        name = entry.name
        if not name.startswith("."):
            continue
        if _DONE_MARK in name and WORK_SUFFIX in name:
            shutil.rmtree(entry, ignore_errors=True)
        elif name.endswith(WORK_SUFFIX) and entry.is_dir():
            alive, _ = owner_alive(entry)
            if alive:
                continue
            stem = name[1 : -len(WORK_SUFFIX)]
            try:
                note = recover_one(folder, entry, [f"{stem}{s}" for s in suffixes])
            except OSError as exc:
                raise FileSetError(
                    f"cannot repair the interrupted export in {entry}: {reason(exc)}; "
                    f"the previous files are in {entry / 'old'}"
                ) from exc
            if note:
                notes.append(note)
        elif name.endswith(".tmp"):
            parts = name.rsplit(".", 2)  # .<target>.<pid>.tmp
            if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                with contextlib.suppress(OSError):
                    entry.unlink()
    return notes
