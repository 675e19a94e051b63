"""Guards against a Qt binding defect that crashes the viewer after a few thousand signals.

PySide6 6.12.0's ``SignalInstance.emit`` returns ``True`` without taking a reference. On
Python 3.11 (where ``True`` is not immortal) each emit lowers ``True``'s reference count until
the interpreter aborts with "bool_dealloc: deallocating True or False" — in the viewer, after
a few thousand mouse moves. 6.11.2 is not affected.
"""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal(float, float)


def test_signal_emit_keeps_bool_refcount() -> None:
    emitter = _Emitter()
    # getrefcount on an immortal object (Python >= 3.12) is constant: the check still holds.
    before = sys.getrefcount(True)
    for _ in range(100):
        emitter.fired.emit(1.0, 2.0)
    lost = before - sys.getrefcount(True)
    assert lost < 50, (
        f"PySide6 {PySide6.__version__}: each Signal.emit drops a reference to True "
        f"({lost} lost in 100 emits); the app will abort with 'bool_dealloc'. "
        "Use a PySide6 without this defect (e.g. 6.11.2)."
    )
