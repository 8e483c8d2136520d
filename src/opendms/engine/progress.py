"""How the engine reports progress (the CLI draws rich bars from this)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def table_started(self, name: str, estimated_rows: int) -> None: ...

    def advance(self, name: str, rows: int) -> None: ...

    def table_done(self, name: str, ok: bool) -> None: ...


class NoProgress:
    """Progress sink that ignores everything."""

    def table_started(self, name: str, estimated_rows: int) -> None:
        pass

    def advance(self, name: str, rows: int) -> None:
        pass

    def table_done(self, name: str, ok: bool) -> None:
        pass
