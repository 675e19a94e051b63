"""The ``with`` protocol of objects that hold a resource until :meth:`Closeable.close`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closeable(ABC):
    """A resource holder usable in a ``with`` block, which closes it on leaving."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds; it must not be used afterwards."""

    def __enter__(self) -> Self:
        """The object itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close (see :meth:`close`)."""
        self.close()
