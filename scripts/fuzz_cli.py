"""Run a list of bad inputs and faults against the installed ``idc-viewer`` and count outcomes.

Run from the repository root (after ``bash scripts/setup.sh``)::

    .venv/bin/python scripts/fuzz_cli.py [--exe .venv/bin/idc-viewer] [--only SUBSTRING] [-v]

Every input is made here, in a temporary folder: damaged and hostile slides, extreme and
malformed arguments, tampered model archives and specs (copies of the bundled model), damaged
result stores, name collisions, a locked output file, a full disk (``ulimit -f``), SIGINT and
SIGTERM mid-run, two runs at once. Each case runs the CLI as a subprocess and is classified:

- ``one-line error``: a refused input: exit status != 0 and exactly one ``error:`` line;
- ``handled``: a fault the CLI recovers from or warns about, exit status as expected;
- ``traceback``: a Python traceback on stderr (or death by a signal we did not send);
- ``other``: anything else (a second unexplained line, a wrong exit status, a hang).

It prints one line per case, then the counts and the peak resident memory of any one run
(``ru_maxrss`` of the CLI process, through GNU ``time``), and exits 1 unless every case was a
one-line error or handled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from model_tamper import rewrite_archive, rewrite_spec  # beside this script
from pyramid_tiff import write_pyramid, write_tiled_pyramid

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "idc_viewer" / "resources" / "models"
DATA = (REPO / ".." / "shared" / "data" / "wsi").resolve()
TIMEOUT_S = 180
TIME_EXE = "/usr/bin/time" if Path("/usr/bin/time").exists() else None  # GNU time

# stderr lines a clean run may print besides error:/warning:/note: lines
_ALLOWED = [
    re.compile(r"^(error|warning|note): "),
    re.compile(r"^\S.*: \d+ tissue patches, \d+ at or above"),
    re.compile(r"^\d+ of \d+ slides? analysed"),
    re.compile(r"^\S.* \[[#.]+\] \d+/\d+ patches"),
    re.compile(r"^\S.*: (interrupted|terminated); what was done is kept"),
    re.compile(r"^(interrupted|terminated \(SIGTERM\))$"),
    re.compile(r"^\S.*\.png: P\(IDC\) = "),
]


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str = "error"  # "error": refused in one line; "ok": handled, exit status in rcs
    rcs: tuple[int, ...] = (0,)
    setup: Callable[[], None] | None = None
    check: Callable[[str], str | None] | None = None  # after the run: None if all is well
    signal_after_s: float | None = None
    signum: int = signal.SIGINT
    shell_prefix: str = ""
    concurrent: bool = False


@dataclass
class Result:
    case: Case
    rc: int
    err: str
    maxrss_kb: int
    wall_s: float
    verdict: str = ""
    detail: str = field(default="")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def run_case(exe: str, case: Case, env: dict[str, str], tmp: Path) -> Result:
    if case.setup:
        case.setup()
    cmd = [exe, *case.argv]
    if case.shell_prefix:
        cmd = ["bash", "-c", case.shell_prefix + ' && exec "$@"', "fuzz", *cmd]
    # Peak memory: a process forked from this (large) one counts our pages until it execs,
    # so GNU time, small itself, forks the CLI and reports that child's own ru_maxrss.
    reports = [tmp / f"maxrss-{i}.txt" for i in range(2 if case.concurrent else 1)]
    timed = [[TIME_EXE, "-f", "%M", "-o", str(r), *cmd] if TIME_EXE else cmd for r in reports]
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        )
        for c in timed
    ]
    chunks: list[list[bytes]] = [[] for _ in procs]
    readers = [
        threading.Thread(target=lambda p=p, c=c: c.append(p.stderr.read()), daemon=True)
        for p, c in zip(procs, chunks, strict=True)
    ]
    for reader in readers:
        reader.start()
    if case.signal_after_s is not None:
        time.sleep(case.signal_after_s)
        for proc in procs:
            for pid in _children(proc.pid) if TIME_EXE else [proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, case.signum)  # the CLI itself, not GNU time
    rcs, maxrss = [], 0
    for proc, report in zip(procs, reports, strict=True):
        try:
            rcs.append(proc.wait(timeout=max(1.0, start + TIMEOUT_S - time.monotonic())))
        except subprocess.TimeoutExpired:
            for pid in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
            rcs.append(-999)
        try:
            # "Command terminated by signal N" / "...exited with non-zero status N", then %M
            text = report.read_text()
            maxrss = max(maxrss, int(text.split()[-1]))
            killed = re.search(r"terminated by signal (\d+)", text)
            if killed and rcs[-1] != -999:
                rcs[-1] = -int(killed.group(1))
        except (OSError, ValueError, IndexError):
            pass
    for reader in readers:
        reader.join(timeout=10)
    errs = [b"".join(c).decode(errors="replace") for c in chunks]
    wall = time.monotonic() - start
    worst = next((i for i, rc in enumerate(rcs) if rc != 0), 0)
    return Result(case, rcs[worst], errs[worst], maxrss, wall)


def classify(result: Result, check_note: str | None) -> None:
    case, err, rc = result.case, result.err, result.rc
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    lines = [line.replace("\x1b[2K", "") for line in lines]
    stray = [line for line in lines if not any(p.search(line) for p in _ALLOWED)]
    errors = [line for line in lines if line.startswith("error: ")]
    if "Traceback (most recent call last)" in err or (rc < 0 and rc != -999):
        result.verdict, result.detail = "traceback", (stray or lines or [f"rc {rc}"])[-1]
    elif rc == -999:
        result.verdict, result.detail = "other", f"no answer within {TIMEOUT_S} s"
    elif stray:
        result.verdict, result.detail = "other", f"stray line: {stray[0][:120]}"
    elif check_note:
        result.verdict, result.detail = "other", check_note
    elif case.expect == "error":
        if rc != 0 and len(errors) == 1:
            result.verdict, result.detail = "one-line error", errors[0][:150]
        else:
            result.verdict = "other"
            result.detail = f"rc {rc}, {len(errors)} error lines"
    elif rc in case.rcs:
        shown = [line for line in lines if line.startswith(("warning:", "note:", "error:"))]
        result.verdict, result.detail = "handled", (shown[0][:150] if shown else f"rc {rc}")
    else:
        result.verdict, result.detail = "other", f"rc {rc}, expected {case.rcs}"


# --------------------------------------------------------------------------- inputs


def tissue_tiff(
    path: Path, side: int = 1200, mpp: float | None = 0.5, levels: int = 3, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    image = np.full((side, side, 3), 240, np.uint8)
    q = side // 4
    image[q : 3 * q, q : 3 * q] = np.array([200, 110, 170], np.uint8) - rng.integers(
        0, 70, (2 * q, 2 * q, 1), dtype=np.uint8
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pyramid(path, image, levels=levels, tile_px=64, mpp=mpp, last_below_px=256)


def big_tiff(path: Path, side: int, mpp: float) -> Path:
    """A ``side``^2 px JPEG-tiled pyramid written tile by tile (small memory), tissue in the
    middle third: for bounded memory on huge slides."""
    tile = 512
    rng = np.random.default_rng(1)
    glass = np.full((tile, tile, 3), 240, np.uint8)
    stained = [
        np.clip(np.array([200, 110, 170]) - rng.integers(0, 70, (tile, tile, 1)), 0, 255).astype(
            np.uint8
        )
        for _ in range(4)
    ]

    def tiles(level_side: int) -> Iterator[np.ndarray]:
        n = -(-level_side // tile)
        for j in range(n):
            for i in range(n):
                inside = n // 3 <= i < 2 * n // 3 and n // 3 <= j < 2 * n // 3
                yield stained[(i + j) % 4] if inside else glass

    return write_tiled_pyramid(path, side, tiles, tile_px=tile, mpp=mpp, compression="jpeg")


def copy_model(dest: Path, name: str = "idc-native-50") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in (".keras", ".tflite", ".spec.json"):
        shutil.copy(MODELS / f"{name}{suffix}", dest / f"{name}{suffix}")
    return dest / f"{name}.spec.json"


def damage_store(results: Path, how: str) -> None:
    (db,) = sorted(results.rglob("*.sqlite3"))[:1]
    if how == "random":
        data = bytearray(db.read_bytes())
        mid = len(data) // 2 // 4096 * 4096
        data[mid : mid + 4096] = os.urandom(4096)
        db.write_bytes(bytes(data))
        return
    statement = {
        "meta-row": "DELETE FROM info WHERE name = 'meta'",
        "key-row": "DELETE FROM info WHERE name = 'key'",
        "meta-json": "UPDATE info SET value = '{oops' WHERE name = 'meta'",
        "cell-outside": "INSERT INTO cells(col, row, probability) VALUES (99999, 1, 0.5)",
        "prob-abc": "UPDATE cells SET probability = 'abc'",
        "prob-7": "UPDATE cells SET probability = 7.0",
    }[how]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(statement)
    conn.close()


def build_cases(root: Path, exe: str) -> list[Case]:
    slides, out, res = root / "slides", root / "out", root / "results"
    good = tissue_tiff(slides / "good.tiff")
    slow = tissue_tiff(slides / "slow.tiff", side=8000, mpp=4.0, levels=3, seed=3)
    no_mpp = tissue_tiff(slides / "nompp.tiff", mpp=None)
    odd_mpp = tissue_tiff(slides / "mpp1e6.tiff", side=512, mpp=1e6, levels=1)
    blank = slides / "white.tiff"
    import tifffile

    tifffile.imwrite(
        blank,
        np.full((600, 600, 3), 255, np.uint8),
        tile=(64, 64),
        resolution=(1e4 / 0.5, 1e4 / 0.5),
        resolutionunit="CENTIMETER",
    )
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.svs").write_bytes(b"")
    (bad / "random.svs").write_bytes(os.urandom(50_000))
    (bad / "text.tiff").write_text("not an image\n")
    (bad / "header.tiff").write_bytes(b"II*\0\x08\0\0\0")
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (bad / "notes.txt").write_text("x")
    (bad / "folder.svs").mkdir()
    os.mkfifo(bad / "pipe.svs")
    os.symlink("loop.svs", bad / "loop.svs")
    truncated = bad / "truncated.tiff"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (bad / "new\nline.svs").write_bytes(os.urandom(1000))
    empty_dir = root / "empty-folder"
    empty_dir.mkdir()
    collide = root / "collide"
    for i, name in enumerate(["a-2.tiff", "a.b.tiff", "a.c.tiff"]):
        tissue_tiff(collide / name, side=600, seed=i)
    models = root / "models"

    def model(name: str, fn: Callable[[Path], Path]) -> str:
        return str(fn(copy_model(models / name)))

    m_pickle = model(
        "pickle",
        lambda s: rewrite_archive(s, **{"model.weights.h5": b"\x80\x04\x95" + os.urandom(64)}),
    )
    m_payload = model("payload", lambda s: rewrite_archive(s, **{"payload.py": b"import os"}))
    m_zipslip = model("zipslip", lambda s: rewrite_archive(s, **{"../../../tmp/zipslip.txt": b"x"}))
    m_thr = model("thr", lambda s: rewrite_spec(s, threshold=True))
    m_scale = model("scale", lambda s: rewrite_spec(s, **{"preprocessing.scale": float("nan")}))
    m_bgr = model("bgr", lambda s: rewrite_spec(s, **{"preprocessing.color": "BGR"}))
    m_hash = model("hash", lambda s: rewrite_spec(s, weights_sha256="0" * 64))
    m_format = model("format", lambda s: rewrite_spec(s, format="other/9"))

    def refused_by_keras(spec: Path) -> Path:
        data = json.loads(spec.read_text())
        with zipfile.ZipFile(spec.with_name(data["weights_file"])) as src:
            config = json.loads(src.read("config.json"))
        layer = next(x for x in config["config"]["layers"] if x["class_name"] != "InputLayer")
        layer["class_name"] = "NoSuchLayer"
        return rewrite_archive(spec, **{"config.json": json.dumps(config).encode()})

    m_keras = model("keras", refused_by_keras)
    deep = root / "deep.spec.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    huge = root / "huge.spec.json"
    huge.write_text('{"pad": "' + "x" * (2 << 20) + '"}')
    not_model = root / "model.keras"
    not_model.write_bytes(b"not a model")
    a_file = root / "a-file"
    a_file.write_text("x")

    def analyze(
        *inputs: object, o: Path = out, r: Path = res, extra: tuple[str, ...] = ()
    ) -> list[str]:
        return [
            "analyze",
            *map(str, inputs),
            "--out",
            str(o),
            "--results-dir",
            str(r),
            "-q",
            *extra,
        ]

    def gradcam(slide: Path, x: str, y: str, *extra: str) -> list[str]:
        return ["gradcam", str(slide), f"--x={x}", f"--y={y}", "-o", str(root / "cam.png"), *extra]

    cases = [Case(f"info {p.name!r}", ["info", str(p)]) for p in sorted(bad.iterdir())]
    cases += [Case(f"analyze {p.name!r}", analyze(p)) for p in sorted(bad.iterdir())[:4]]
    cases += [
        Case("info missing file", ["info", str(root / "missing.svs")]),
        Case("info /dev/zero", ["info", "/dev/zero"]),
        Case("info no µm/px", ["info", str(no_mpp)]),
        Case("info stored µm/px 1e6", ["info", str(odd_mpp)]),
        Case("analyze no µm/px", analyze(no_mpp)),
        *[
            Case(f"info --mpp {m}", ["info", str(good), "--mpp", m])
            for m in ("1e-300", "1e-6", "0.001", "1e6", "nan", "inf", "-1", "0", "abc")
        ],
        *[Case(f"analyze --mpp {m}", analyze(good, extra=("--mpp", m))) for m in ("1e-6", "1e6")],
        Case(
            "info --mpp 0.01 (slide << one patch)",
            ["info", str(good), "--mpp", "0.01"],
            expect="ok",
        ),
        Case("info --mpp 0.02", ["info", str(good), "--mpp", "0.02"], expect="ok"),
        *[
            Case(f"analyze --threshold {t}", analyze(good, extra=("--threshold", t)))
            for t in ("2", "-1", "nan")
        ],
        *[
            Case(f"analyze --batch-size {b}", analyze(good, extra=("--batch-size", b)))
            for b in ("0", "abc")
        ],
        Case("analyze --out is a file", analyze(good, o=a_file)),
        Case("analyze --results-dir is a file", analyze(good, r=a_file)),
        Case("analyze empty folder", analyze(empty_dir)),
        Case("analyze empty folder among slides", analyze(good, empty_dir, o=root / "o-empty")),
        Case("analyze white slide", analyze(blank, o=root / "o-white"), expect="ok"),
        Case(
            "analyze colliding names",
            analyze(collide, o=root / "o-collide"),
            expect="ok",
            check=lambda err: (
                None
                if len(list((root / "o-collide").glob("*.patches.csv"))) == 3
                else "colliding names share outputs"
            ),
        ),
        *[Case(f"gradcam --x {v}", gradcam(good, v, "300")) for v in ("nan", "inf", "-inf")],
        Case("gradcam outside the slide", gradcam(good, "1e12", "5")),
        Case(
            "gradcam on background",
            gradcam(good, "5", "5"),
            expect="ok",
            check=lambda err: None if "not tissue" in err else "no background warning",
        ),
        Case(
            "gradcam -o into a missing folder",
            ["gradcam", str(good), "--x", "600", "--y", "600", "-o", str(root / "nope" / "x.png")],
        ),
        Case("gradcam with a model Keras refuses", gradcam(good, "600", "600", "--model", m_keras)),
        *[
            Case(f"analyze model {n}", analyze(good, extra=("--model", m)))
            for n, m in [
                ("pickled weights", m_pickle),
                ("extra payload.py", m_payload),
                ("zip-slip member", m_zipslip),
                ("threshold true", m_thr),
                ("scale NaN", m_scale),
                ("color BGR", m_bgr),
                ("wrong hash", m_hash),
                ("unknown format", m_format),
                ("not a model", str(not_model)),
                ("missing", str(root / "none.keras")),
            ]
        ],
        Case("info spec nested 200,000 deep", ["info", str(good), "--model", str(deep)]),
        Case("info spec of 2 MB", ["info", str(good), "--model", str(huge)]),
        Case(
            "analyze full disk (ulimit -f 4)",
            analyze(good, o=root / "o-full", r=root / "r-full"),
            shell_prefix="ulimit -f 4",
        ),
        Case(
            "two analyses at once",
            analyze(good, o=root / "o-twice", r=root / "r-twice"),
            expect="ok",
            rcs=(0, 1),
            concurrent=True,
        ),
        *[
            Case(
                f"{signum.name} mid-analysis",
                analyze(
                    slow, o=root / f"o-{tag}", r=root / f"r-{tag}", extra=("--batch-size", "1")
                ),
                expect="ok",
                rcs=(rc,),
                signal_after_s=3.0,
                signum=signum,
                check=lambda err, word=word: None if word in err else "no message",
            )
            for signum, tag, rc, word in (
                (signal.SIGINT, "int", 130, "interrupted"),
                (signal.SIGTERM, "term", 143, "terminated"),
            )
        ],
    ]
    # a locked output file (a CSV open in Excel): immutable, so it cannot be replaced
    locked_out = root / "o-locked"

    def lock() -> None:
        subprocess.run(
            [exe, *analyze(good, o=locked_out, r=root / "r-locked")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["chattr", "+i", str(locked_out / "good.regions.csv")], check=False, capture_output=True
        )

    def locked_check(err: str) -> str | None:
        subprocess.run(
            ["chattr", "-i", str(locked_out / "good.regions.csv")], check=False, capture_output=True
        )
        return None if (locked_out / "good.patches.csv").is_file() else "previous export lost"

    cases.append(
        Case(
            "re-export onto a locked regions.csv",
            analyze(good, o=locked_out, r=root / "r-locked", extra=("--threshold", "0.2")),
            expect="ok",
            rcs=(0, 1),
            setup=lock,
            check=locked_check,
        )
    )
    # damaged result stores: analyse, damage, analyse again (recomputed, one warning)
    for how in ("random", "meta-row", "key-row", "meta-json", "cell-outside", "prob-abc", "prob-7"):
        store = root / f"r-{how}"

        def prepare(store: Path = store, how: str = how) -> None:
            subprocess.run(
                [exe, *analyze(good, o=root / "o-store", r=store)], check=True, capture_output=True
            )
            damage_store(store, how)

        cases.append(
            Case(
                f"store damage: {how}",
                analyze(good, o=root / "o-store", r=store),
                expect="ok",
                setup=prepare,
                check=lambda err: None if "damaged" in err else "damage not reported",
            )
        )
    huge = big_tiff(slides / "huge.tiff", 100_000, 4.0)
    cases += [
        Case("info 100,000^2 px slide at 4 µm/px", ["info", str(huge)], expect="ok"),
        Case(
            "info 100,000^2 px slide at 0.25 µm/px",
            ["info", str(huge), "--mpp", "0.25"],
            expect="ok",
        ),
        Case("info 100,000^2 px slide at 100 µm/px", ["info", str(huge), "--mpp", "100"]),
    ]
    if DATA.is_dir():
        cases += [
            Case("info broken-dicom.dcm", ["info", str(DATA / "broken-dicom.dcm")]),
            Case(
                "info CMU --mpp 0.01",
                ["info", str(DATA / "CMU-1-Small-Region.svs"), "--mpp", "0.01"],
                expect="ok",
            ),
        ]
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exe", default=str(REPO / ".venv" / "bin" / "idc-viewer"))
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="print stderr of failures")
    args = parser.parse_args()
    env = {**os.environ, "IDC_VIEWER_MODEL": str(MODELS / "idc-native-50.spec.json")}
    env.pop("IDC_VIEWER_DEBUG", None)
    with tempfile.TemporaryDirectory(prefix="idc-fuzz-") as tmp:
        root = Path(tmp)
        env["IDC_VIEWER_DATA_DIR"] = str(root / "data")  # never the user's own store
        cases = build_cases(root, args.exe)
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        results = []
        for case in cases:
            result = run_case(args.exe, case, env, root)
            classify(result, case.check(result.err) if case.check else None)
            results.append(result)
            print(
                f"{result.verdict:<15} {result.wall_s:6.1f} s {result.maxrss_kb / 1024:7.0f} MB"
                f"  {case.name}: {result.detail}",
                flush=True,
            )
            if args.verbose and result.verdict in ("traceback", "other"):
                print("    " + result.err.replace("\n", "\n    "))
    counts = {
        v: sum(r.verdict == v for r in results)
        for v in ("one-line error", "handled", "traceback", "other")
    }
    peak = max(results, key=lambda r: r.maxrss_kb)
    print(
        f"\n{len(results)} cases: {counts['one-line error']} one-line errors, "
        f"{counts['handled']} handled, {counts['traceback']} tracebacks, "
        f"{counts['other']} other"
    )
    print(f"peak memory of one run: {peak.maxrss_kb / 1024:.0f} MB ({peak.case.name})")
    return 0 if counts["traceback"] == counts["other"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
