"""An export set is replaced all at once: a failure, Ctrl-C, SIGTERM or kill -9 mid-export leaves
all the old files or all the new ones (after the next run's repair), never a mix, never a loss."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from heatmap_fakes import plain_grid

from idc_viewer.core import fileset
from idc_viewer.core.export import (
    export_all,
    export_provenance_only,
    recover_exports,
    verify_export,
)
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.writers import ExportError

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals (SIGKILL)")
NAMES = ["s.patches.csv", "s.regions.csv", "s.regions.geojson", "s.provenance.json"]


def make_heatmap(value: float) -> Heatmap:
    grid = plain_grid(100.0, 3, 2)  # 2.0 µm/px
    probs = np.full((2, 3), value, dtype=np.float32)
    probs[1, 2] = np.nan
    return Heatmap(grid, probs)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry of ``folder`` (hidden ones too) with its bytes; folders as b'<dir>'."""
    return {p.name: (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.iterdir()}


def old_and_new(tmp_path: Path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A folder holding an old export, and the bytes of the old and of the new set."""
    ref = tmp_path / "ref"
    export_all(ref, "s", make_heatmap(0.9), 0.5, {"run": "new"})
    new = snapshot(ref)
    out = tmp_path / "out"
    export_all(out, "s", make_heatmap(0.2), 0.5, {"run": "old"})
    return out, snapshot(out), new


def test_export_seals_the_set_with_each_files_hash(tmp_path):
    export_all(tmp_path, "s", make_heatmap(0.9), 0.5, {"run": 1})
    info = json.loads((tmp_path / "s.provenance.json").read_text())
    assert sorted(info["files"]) == sorted(NAMES[:3])
    assert info["files"]["s.patches.csv"]["sha256"] == fileset.sha256_file(tmp_path / NAMES[0])
    assert verify_export(tmp_path, "s") == []
    (tmp_path / "s.regions.csv").write_text("edited\n")
    assert verify_export(tmp_path, "s") == ["s.regions.csv: content differs from the seal"]


def test_reexport_onto_a_locked_file_keeps_the_previous_export(tmp_path, monkeypatch):
    """Windows refuses to move a CSV open in Excel: the earlier export must survive whole."""
    out, old, _ = old_and_new(tmp_path)
    real_replace = os.replace

    def locked(src, dst):  # a sharing violation on the live regions.csv, as Windows gives
        if out / "s.regions.csv" in (Path(src), Path(dst)):
            raise PermissionError(13, "The process cannot access the file", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(fileset.os, "replace", locked)
    with pytest.raises(ExportError) as info:
        export_all(out, "s", make_heatmap(0.9), 0.5, {"run": "new"})
    assert "previous files are kept" in str(info.value) and "\n" not in str(info.value)
    assert snapshot(out) == old  # byte for byte, and no hidden leftovers


def test_failure_while_placing_the_new_files_puts_the_old_ones_back(tmp_path, monkeypatch):
    out, old, _ = old_and_new(tmp_path)
    real_replace = os.replace
    failed = []

    def fails_when_placing_geojson(src, dst):
        if Path(dst) == out / "s.regions.geojson" and not failed:
            failed.append(dst)
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(fileset.os, "replace", fails_when_placing_geojson)
    with pytest.raises(ExportError, match="disk is full"):
        export_all(out, "s", make_heatmap(0.9), 0.5, {"run": "new"})
    assert snapshot(out) == old


def test_a_warning_export_replaces_the_whole_old_set(tmp_path):
    out, _, _ = old_and_new(tmp_path)
    export_provenance_only(out, "s", {"warning": "no tissue"})
    assert sorted(snapshot(out)) == ["s.provenance.json"]  # no CSV of another run beside it
    assert json.loads((out / "s.provenance.json").read_text())["files"] == {}


def test_an_export_running_elsewhere_is_not_disturbed(tmp_path, monkeypatch):
    monkeypatch.setattr(fileset, "LOCK_WAIT_S", 0.3)
    out, _, _ = old_and_new(tmp_path)
    work = out / ".s.idc-export"
    work.mkdir()
    owner = {"pid": os.getppid(), "host": socket.gethostname()}  # alive: pytest's parent
    (work / "owner.json").write_text(json.dumps(owner))
    with pytest.raises(ExportError, match=r"another export of s into .* is still running"):
        export_all(out, "s", make_heatmap(0.9), 0.5, {})
    assert recover_exports(out) == []  # a live owner's folder is left alone
    assert work.is_dir()


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    out, old, _ = old_and_new(tmp_path)
    (out / f".s.patches.csv.{pid}.tmp").write_text("half")
    (out / f".s.patches.csv.{os.getpid()}.tmp").write_text("mine, alive")
    recover_exports(out)
    assert sorted(snapshot(out)) == sorted([*old, f".s.patches.csv.{os.getpid()}.tmp"])


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from core.test_fileset import make_heatmap
    from idc_viewer.core.export import export_all, export_provenance_only
    from idc_viewer.core import fileset
    from idc_viewer.cli.errors import sigterm_as_interrupt

    # a child of a background job starts with SIGINT ignored: give it Python's own handler, as
    # an interactive `idc-viewer` has
    signal.signal(signal.SIGINT, signal.default_int_handler)
    at, how = int(sys.argv[2]), sys.argv[3]
    fail_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    real_replace = os.replace
    calls = [0]

    def replace(src, dst):
        calls[0] += 1
        if calls[0] - 1 == fail_at:  # a locked file: the rollback starts
            raise PermissionError(13, "locked", str(dst))
        if calls[0] - 1 == at:  # once
            os.kill(os.getpid(), getattr(signal, how))
        return real_replace(src, dst)

    fileset.os.replace = replace
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)  # as idc-viewer does
    try:
        if len(sys.argv) > 5 and sys.argv[5] == "warning":
            export_provenance_only(sys.argv[1], "s", {{"warning": "no tissue"}})
        else:
            export_all(sys.argv[1], "s", make_heatmap(0.9), 0.5, {{"run": "new"}})
    except KeyboardInterrupt:
        print("calls", calls[0]); sys.exit(130)
    except Exception as exc:
        print("failed", type(exc).__name__, "calls", calls[0]); sys.exit(1)
    print("calls", calls[0])
    """
)


def count_moves(tmp_path: Path) -> int:
    """How many os.replace calls one re-export makes (an old set present)."""
    out, _, _ = old_and_new(tmp_path / "probe")
    probe = run_child(out, -1, "SIGKILL")
    assert probe.returncode == 0, probe.stderr
    return int(probe.stdout.split()[-1])


def run_child(
    out: Path, at: int, how: str, fail_at: int = -1, mode: str = "full"
) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(tests=str(Path(__file__).resolve().parents[1]))
    return subprocess.run(
        [sys.executable, "-c", code, str(out), str(at), how, str(fail_at), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@POSIX_ONLY
def test_kill_during_export_then_next_run_leaves_all_old_or_all_new(tmp_path):
    n_moves = count_moves(tmp_path)
    seen = set()
    for at in range(n_moves):
        out, old, new = old_and_new(tmp_path / f"k{at}")
        proc = run_child(out, at, "SIGKILL")
        assert proc.returncode == -signal.SIGKILL
        recover_exports(out)  # what the next run does first
        after = snapshot(out)
        assert after in (old, new), f"killed at move {at}: a mix of two runs"
        seen.add("new" if after == new else "old")
        assert verify_export(out, "s") == []
    assert seen == {"old", "new"}  # the kills did land on both sides of the seal


@POSIX_ONLY
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_mid_swap_never_leaves_a_mix(tmp_path, how):
    n_moves = count_moves(tmp_path)
    for at in range(0, n_moves, 2):  # writing the new files, moving the old out, the new in
        out, old, new = old_and_new(tmp_path / f"k{at}")
        proc = run_child(out, at, how)
        assert proc.returncode == 130, proc.stderr
        assert snapshot(out) in (old, new), f"{how} at move {at}: a mix or a leftover"


def test_values_that_are_not_probabilities_are_not_exported(tmp_path):
    heatmap = make_heatmap(0.5)
    heatmap.probabilities[0, 0] = 7.0
    with pytest.raises(ExportError, match="outside"):
        export_all(tmp_path, "s", heatmap, 0.5, {})
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_is_never_swept_away(tmp_path):
    (tmp_path / "s.regions.csv").mkdir()
    (tmp_path / "s.regions.csv" / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a file"):
        export_all(tmp_path, "s", make_heatmap(0.9), 0.5, {})
    assert (tmp_path / "s.regions.csv" / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.regions.csv"]


def test_an_export_waits_for_another_of_the_same_stem(tmp_path):
    """Two runs at once: the second waits for the first's swap instead of failing."""
    import threading

    out, _, new = old_and_new(tmp_path)
    work = out / ".s.idc-export"
    work.mkdir()
    (work / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    timer = threading.Timer(0.5, lambda: (work / "owner.json").unlink() or work.rmdir())
    timer.start()
    export_all(out, "s", make_heatmap(0.9), 0.5, {"run": "new"})
    timer.join()
    assert snapshot(out) == new


@pytest.mark.parametrize("mode", ["full", "warning"])
@POSIX_ONLY
def test_kill_during_a_rollback_still_leaves_the_old_set(tmp_path, mode):
    """Placing the new files fails (a locked file) and the process is killed while it puts
    the old ones back: the next run still restores the old set whole, including files the new
    set does not have (a warning-only export replacing a full one)."""
    out, old, _ = old_and_new(tmp_path / "probe")
    probe = run_child(out, -1, "SIGKILL", -1, mode)
    n_moves = int(probe.stdout.split()[-1])
    fail_at = n_moves - 2  # placing the seal, the last file (then the work folder's rename)
    out, old, _ = old_and_new(tmp_path / "rollback")
    proc = run_child(out, -1, "SIGKILL", fail_at, mode)
    assert proc.returncode == 1 and "failed ExportError" in proc.stdout, proc.stdout
    n_total = int(proc.stdout.split()[-1])
    assert snapshot(out) == old
    for at in range(fail_at + 1, n_total):  # every move of the rollback
        out, old, _ = old_and_new(tmp_path / f"r{at}")
        proc = run_child(out, at, "SIGKILL", fail_at, mode)
        assert proc.returncode == -signal.SIGKILL
        recover_exports(out)
        assert snapshot(out) == old, f"killed at rollback move {at}"


@pytest.mark.parametrize("old_file_locked", [False, True])
def test_a_work_folder_that_cannot_be_renamed_is_still_read_as_finished(
    tmp_path, monkeypatch, old_file_locked
):
    """On Windows a file held open blocks renaming the work folder away after the swap: it is
    deleted in place, old files before their mark, so a leftover never reads as half done."""
    out, _, new = old_and_new(tmp_path)
    real_replace, real_unlink = os.replace, Path.unlink

    def no_rename_of_work(src, dst):
        if ".done-" in str(dst):
            raise PermissionError(13, "in use", str(src))
        return real_replace(src, dst)

    def locked_unlink(self, *args, **kwargs):
        if old_file_locked and self.parent.name == "old" and self.name == "s.patches.csv":
            raise PermissionError(13, "in use", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(fileset.os, "replace", no_rename_of_work)
    monkeypatch.setattr(Path, "unlink", locked_unlink)
    export_all(out, "s", make_heatmap(0.9), 0.5, {"run": "new"})
    monkeypatch.undo()
    assert (out / ".s.idc-export").exists() == old_file_locked
    if old_file_locked:  # the next run is another process; this one has ended by then
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        owner = out / ".s.idc-export" / "owner.json"
        owner.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    recover_exports(out)
    assert snapshot(out) == new
