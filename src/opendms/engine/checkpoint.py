"""CDC positions as a task keeps them: the checkpoint text, CdcStopPosition, and which
engines can take part in CDC at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from opendms.changes import ChangeSource, Position, Transaction
from opendms.config import TaskSpec
from opendms.endpoints.base import Source, Target
from opendms.errors import ConfigError


@dataclass(frozen=True)
class Checkpoint:
    """The applied position, and while catching up after a snapshot-less full load,
    the position up to which changes may already be in the target."""

    position: Position
    until: Position | None = None

    def text(self) -> str:
        if self.until is not None and self.position < self.until:
            return f"{self.position} until {self.until}"
        return str(self.position)

    @classmethod
    def parse(cls, text: str, capture: ChangeSource) -> Checkpoint:
        head, _, until = text.partition(" until ")
        return cls(capture.parse_position(head), capture.parse_position(until) if until else None)


def check_cdc_pair(spec: TaskSpec, source: Source, target: Target) -> None:
    """Fail early, naming the endpoint, when an engine cannot take part in CDC."""
    from opendms.endpoints import engine_for

    if not engine_for(source.url, "source").capabilities.cdc_source:
        raise ConfigError(
            f"{source.url.scheme}:// sources cannot capture changes",
            where=f"task {spec.name}",
            path="$.migration_type",
        )


def stop_predicate(text: str, capture: ChangeSource) -> Callable[[Transaction], bool]:
    """CdcStopPosition: ``commit_time:ISO``/``server_time:ISO`` (UTC) or a position."""
    kind, _, rest = text.partition(":")
    if kind in ("commit_time", "server_time"):
        try:
            when = datetime.fromisoformat(rest.strip())
        except ValueError:
            raise ConfigError(
                f"CdcStopPosition {text!r}: {rest!r} is not an ISO date-time",
                path="$.CdcStopPosition",
            ) from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        return lambda txn: txn.commit_time > when
    position = capture.parse_position(text)
    return lambda txn: txn.end > position
