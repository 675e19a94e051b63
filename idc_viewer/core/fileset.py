"""Replace a set of files in a folder so that readers find all old or all new files, never a mix.

A set is ``<stem><suffix>`` for a fixed list of suffixes, the last one being the *seal* (the
provenance), which names every other file of the set with its SHA-256. Committing a set:

1. takes the set's work folder ``.<stem>.idc-export`` in the target folder (created with
   ``mkdir``, so it is also the lock: two exports of one stem never interleave), recording the
   owner's host and process id;
2. writes every new file into ``<work>/new`` (fsynced), the seal last, with the hashes;
3. moves the old set into ``<work>/old``, the old seal first, then marks ``old/.complete``;
4. moves the new files into place, the seal last;
5. renames the work folder to ``...done-<pid>`` and deletes it.

An error in 3-4 (a file locked by a spreadsheet on Windows, a full disk, Ctrl-C or SIGTERM,
which are held back during the swap) moves everything back: the old set is untouched. A crash
(kill -9, power loss) leaves the work folder, and the next export into the folder (or
:func:`recover`) finishes the commit if the new seal was already in place and rolls it back
otherwise. Stale temporaries of dead processes are removed then too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from idc_viewer.core.fileset_recovery import (
    COMPLETE_MARK,
    OWNER_FILE,
    WORK_SUFFIX,
    FileSetError,
    discard,
    fsync_dir,
    move,
    owner_alive,
    reason,
    recover,
    recover_one,
)

__all__ = ["LOCK_WAIT_S", "commit", "sha256_file", "signals_deferred", "verify"]

#: How long an export waits for another live export of the same stem (writing a large slide's
#: CSVs takes seconds) before it gives up with a message.
LOCK_WAIT_S = 60.0


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM meanwhile, then deliver them (main thread only).

    The swap of a set takes milliseconds; interrupting it half-way would leave a mix.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums: list[int] = [signal.SIGINT, signal.SIGTERM]
    pending: list[int] = []
    previous: dict[int, Any] = {}
    for signum in signums:
        with contextlib.suppress(ValueError, OSError):  # not allowed (embedded interpreter)
            previous[signum] = signal.signal(signum, lambda s, _f: pending.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for pending_signum in dict.fromkeys(pending):
            signal.raise_signal(pending_signum)


def _restore(directory: Path, work: Path, names: Sequence[str], placed: Sequence[str]) -> None:
    """Undo a swap: new files in ``placed`` go back to ``new/``, the old ones come back."""
    new, old = work / "new", work / "old"
    for name in reversed(placed):
        if (directory / name).exists():
            move(directory / name, new / name)
    # no new file is live any more: from here a crash is repaired by putting old/ back
    if old.is_dir():
        (old / COMPLETE_MARK).unlink(missing_ok=True)
        fsync_dir(old)
    # the seal (first in names) comes back last, after the files it names
    for name in [*names[1:], names[0]]:
        if (old / name).exists():
            move(old / name, directory / name)
    fsync_dir(directory)


def _acquire(directory: Path, work: Path, names: Sequence[str], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    attempts = 0
    while attempts < 3:
        try:
            work.mkdir()
        except FileExistsError:
            alive, pid = owner_alive(work)
            if alive and time.monotonic() < deadline:
                time.sleep(0.1)  # another export of the stem: it takes a moment, wait for it
                continue
            if alive:
                who = f"process {pid}" if pid else "another process"
                stem = work.name[1 : -len(WORK_SUFFIX)]
                raise FileSetError(
                    f"another export of {stem} into {directory} is still running ({who}) "
                    f"after {wait_s:g} s; if none is, delete {work}"
                ) from None
            try:
                recover_one(directory, work, names)
            except OSError as exc:
                raise FileSetError(
                    f"cannot repair the interrupted export in {work}: {reason(exc)}"
                ) from exc
            attempts += 1
            continue
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        (work / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        return
    raise FileSetError(f"cannot take {work}: it keeps reappearing")


def commit(
    directory: Path | str,
    stem: str,
    suffixes: Sequence[str],
    writers: Mapping[str, Callable[[Path], object]],
    seal: Callable[[Path, Mapping[str, Any]], object],
    wait_s: float | None = None,
) -> list[Path]:
    """Replace the set ``<stem><suffix>`` in ``directory`` with new files, all at once.

    Parameters
    ----------
    directory
        Target folder (created if missing).
    stem
        File name prefix of the set.
    suffixes
        Every suffix of the set, the seal's first; files of the set that ``writers`` does
        not produce are removed (they belong to the old set).
    writers
        Suffix -> function writing that file at the path given (raising ``OSError`` or
        another ``Exception`` with a one-line message on failure).
    seal
        Writes the seal at the path given from ``{"files": {name: {"sha256", "bytes"}}}``.
    wait_s
        How long to wait for another live export of the same stem to finish
        (:data:`LOCK_WAIT_S` by default).

    Returns
    -------
    list of pathlib.Path
        The new files, in ``writers`` order, then the seal.

    Raises
    ------
    FileSetError
        Nothing was replaced: the old set (if any) is as it was.
    """
    folder = Path(directory)
    names = [f"{stem}{s}" for s in suffixes]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        recover(folder, suffixes)
    except OSError as exc:
        raise FileSetError(f"cannot create {folder}: {reason(exc)}") from exc
    work = folder / f".{stem}{WORK_SUFFIX}"
    try:
        _acquire(folder, work, names, LOCK_WAIT_S if wait_s is None else wait_s)
    except OSError as exc:
        raise FileSetError(f"cannot write into {folder}: {reason(exc)}") from exc
    new, old = work / "new", work / "old"
    written = [f"{stem}{s}" for s in writers]
    try:
        new.mkdir()
        files: dict[str, dict[str, Any]] = {}
        for suffix, write in writers.items():
            path = new / f"{stem}{suffix}"
            write(path)
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        seal(new / names[0], {"files": files})
        fsync_dir(new)
    except BaseException as exc:
        discard(work)
        if isinstance(exc, OSError):
            raise FileSetError(f"cannot write {stem} into {folder}: {reason(exc)}") from exc
        raise
    for name in names:  # never sweep away what is not an earlier export (a folder, a device)
        live = folder / name
        if live.exists() and not live.is_symlink() and not live.is_file():
            discard(work)
            raise FileSetError(
                f"cannot replace {live}: it is not a file (a folder?); move it away and retry"
            )
    moved_out: list[str] = []
    placed: list[str] = []
    try:
        with signals_deferred():
            try:
                old.mkdir()
                for name in names:  # the old seal first: a half-moved old set has no seal
                    if (folder / name).exists() or (folder / name).is_symlink():
                        move(folder / name, old / name)
                        moved_out.append(name)
                (old / COMPLETE_MARK).touch()
                fsync_dir(old)
                for name in [*written, names[0]]:  # the new seal last
                    move(new / name, folder / name)
                    placed.append(name)
                fsync_dir(folder)
            except BaseException:
                try:
                    _restore(folder, work, names, placed)
                except OSError as undo:
                    raise FileSetError(
                        f"cannot put the previous {stem} files back ({reason(undo)}); "
                        f"they are in {old}"
                    ) from undo
                discard(work)
                raise
            discard(work)  # before a held-back Ctrl-C is delivered
    except OSError as exc:
        blocked = exc.filename if isinstance(exc.filename, str) else None
        where = f" ({Path(blocked).name} is in use or read-only)" if blocked else ""
        raise FileSetError(
            f"cannot replace the {stem} files in {folder}{where}: {reason(exc)}; "
            "the previous files are kept"
        ) from exc
    return [folder / name for name in [*written, names[0]]]


def verify(directory: Path | str, stem: str, seal_suffix: str) -> list[str]:
    """Problems of the set ``<stem>*`` in ``directory`` against its seal (empty: consistent)."""
    folder = Path(directory)
    seal_path = folder / f"{stem}{seal_suffix}"
    try:
        data = json.loads(seal_path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{seal_path.name}: no readable seal ({type(exc).__name__})"]
    problems = []
    for name, entry in files.items():
        path = folder / str(name)
        if Path(str(name)).name != name or not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != (entry or {}).get("sha256"):
            problems.append(f"{name}: content differs from the seal")
    return problems
