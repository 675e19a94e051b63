"""Shared pytest fixtures: real data location and small synthetic slide files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# shared test doubles (tests/model_fakes.py) are imported by name under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).resolve().parent))

from slide_fakes import write_pyramid_tiff  # noqa: E402  (re-exported for the tests here)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real, read-only files); skips the test when it is absent."""
    path = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real test data not available: {path} is missing")
    return path


@pytest.fixture
def synthetic_tiff(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``synthetic_tiff(image=None, name="slide.tiff", **write_pyramid_tiff_kwargs)``.

    Without ``image`` it writes a 512x384 white slide with a pink square.
    """

    def make(image: np.ndarray | None = None, name: str = "slide.tiff", **kwargs: object) -> Path:
        if image is None:
            image = np.full((384, 512, 3), 255, dtype=np.uint8)
            image[100:300, 150:400] = (230, 150, 190)
        return write_pyramid_tiff(tmp_path / name, image, **kwargs)  # type: ignore[arg-type]

    return make
