"""Tampering with a saved model's files: the hostile inputs of the fuzz run and the ml tests.

Only the standard library, so that ``scripts/fuzz_cli.py`` (which runs the installed CLI and
imports nothing of the app) and ``tests/ml`` share one copy. It lives beside the script, not in
``tests/``, because a script must not depend on the test tree; the tests put ``scripts/`` on
their path (``tests/ml/conftest.py``). Not part of the installed package.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path


def rewrite_archive(spec_path: Path, **members: bytes | None) -> Path:
    """Replace (bytes), drop (None) or add members of the spec's ``.keras``; rehash it there.

    Only the archive's content is then left to be refused: its hash matches. Returns the spec.
    """
    keras_path = Path(spec_path).with_name(json.loads(Path(spec_path).read_text())["weights_file"])
    with zipfile.ZipFile(keras_path) as src:
        content = {name: src.read(name) for name in src.namelist()}
    for name, data in members.items():
        if data is None:
            content.pop(name, None)
        else:
            content[name] = data
    with zipfile.ZipFile(keras_path, "w") as dst:
        for name, data in content.items():
            dst.writestr(name, data)
    digest = hashlib.sha256(keras_path.read_bytes()).hexdigest()
    return rewrite_spec(spec_path, weights_sha256=digest)


def rewrite_spec(spec_path: Path, **changes: object) -> Path:
    """Set top-level fields of the spec (``preprocessing.<field>``: one of its fields); the spec."""
    data = json.loads(Path(spec_path).read_text())
    for key, value in changes.items():
        if key.startswith("preprocessing."):
            data["preprocessing"][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    Path(spec_path).write_text(json.dumps(data))
    return Path(spec_path)
