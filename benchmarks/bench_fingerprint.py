"""What the full-content slide fingerprint costs when a ~1 GB slide is opened.

Run from the repository root::

    .venv/bin/python benchmarks/bench_fingerprint.py [--gb 1.0] [--keep PATH]

Writes a tiled, uncompressed TIFF pyramid of about ``--gb`` GB (random tissue-like tiles,
written tile by tile so memory stays small), then times, in one run on this machine:

(a) ``open_slide`` (the baseline a user waits for anyway);
(b) the v1 fingerprint (size + first and last MiB: what the issue showed to be fooled);
(c) the v2 fingerprint, every byte hashed, with the file evicted from the page cache first
    (``posix_fadvise(DONTNEED)``: a cold read, as after a reboot);
(d) the same again, the file in the page cache (a slide reopened in one session);
(e) v2 with the fingerprint cache of the results store (an unchanged file reopened later);

and prints each with its ratio to (a) and MB/s. The file is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))  # pyramid_tiff

from pyramid_tiff import write_tiled_pyramid  # noqa: E402

from idc_viewer.core.fingerprint import slide_fingerprint  # noqa: E402
from idc_viewer.core.readers import open_slide  # noqa: E402

TILE = 512


def write_slide(path: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    pool = rng.integers(60, 240, (8, TILE, TILE, 3), dtype=np.uint8)  # varied, cheap tiles

    def tiles(level_side: int) -> Iterator[np.ndarray]:
        n_side = -(-level_side // TILE)
        for i in range(n_side * n_side):
            tile = pool[i % len(pool)].copy()
            tile[0, :8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)[:, None]  # unique
            yield tile

    write_tiled_pyramid(path, side, tiles, tile_px=TILE, mpp=0.25, compression=None)


def evict(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def v1_fingerprint(path: Path) -> str:
    digest = hashlib.sha256(b"idc-viewer-fingerprint-v1\0")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        fh.seek(max(1 << 20, size - (1 << 20)))
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="slide size in GB (default 1)")
    parser.add_argument("--keep", metavar="PATH", help="write the slide here and keep it")
    args = parser.parse_args()
    side = int((args.gb * 1e9 / 3 / (1 + 1 / 16 + 1 / 256)) ** 0.5) // TILE * TILE
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "big.tiff"
        write_s, _ = timed(lambda: write_slide(path, side))
        size_mb = path.stat().st_size / 1e6
        print(f"slide: {side} x {side} px, {size_mb:,.0f} MB (written in {write_s:.1f} s)")
        cold = evict(path)
        open_s, slide = timed(lambda: open_slide(path))
        with slide:
            v1_s, _ = timed(lambda: v1_fingerprint(path))
            evict(path)
            cold_s, fp = timed(lambda: slide_fingerprint(slide))
        with open_slide(path) as slide:
            warm_s, fp_warm = timed(lambda: slide_fingerprint(slide))
        cache = Path(tmp) / "fingerprints"
        with open_slide(path) as slide:
            slide_fingerprint(slide, cache)
        with open_slide(path) as slide:
            cached_s, fp_cached = timed(lambda: slide_fingerprint(slide, cache))
        assert fp == fp_warm == fp_cached
        rows = [
            ("(a) open_slide", open_s),
            ("(b) v1 fingerprint (head+tail)", v1_s),
            (f"(c) v2 full hash, {'cold' if cold else 'page cache not evictable'}", cold_s),
            ("(d) v2 full hash, in page cache", warm_s),
            ("(e) v2 from the fingerprint cache", cached_s),
        ]
        for label, seconds in rows:
            rate = f"{size_mb / seconds:8,.0f} MB/s" if label[1] in "cd" else " " * 13
            print(
                f"{label:<40} {seconds * 1000:9.1f} ms  {rate}  "
                f"{seconds / open_s:7.2f} x open_slide"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
