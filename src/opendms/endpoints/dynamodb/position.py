"""The position of a CDC task in the DynamoDB Streams of its tables, as a value and as
the text a checkpoint stores.

A stream is a set of shards (a shard lives about four hours, then closes; children
continue it), so a position is:

* per shard (``<table>/<shardId>``): the sequence number of the last record applied,
  or ``done`` once the shard was read to its end (closed shards whose shard is no longer
  listed by ``DescribeStream`` are dropped from it);
* ``since``: records created before it are skipped in every shard (the start of a new
  full load, less a safety margin: the ``Scan`` saw their effect); absent: nothing is
  skipped;
* a *watermark*: every record created up to it has been applied (the slowest shard's
  last record, or the time a shard was last found to have nothing new).

Positions are ordered by their watermark, the one total order the shards share (a
sequence number orders one shard only): the engine's ``until`` after a full load and
``CdcStopPosition`` compare watermarks. Text form, ``|``-separated::

    2026-12-04T23:40:01.123Z|since=2026-12-04T23:39:01.000Z|items/shardId-0001=4200|items/shardId-0000=done

A bare ISO date-time (``CdcStartPosition``) is a position whose ``since`` and watermark
are that time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from opendms.errors import ConfigError

__all__ = ["DONE", "EPOCH", "StreamPosition", "iso", "parse_time"]

DONE = "done"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(when: datetime) -> str:
    """``when`` in UTC with milliseconds: ``2026-12-04T23:40:01.123Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO date-time (UTC unless it has a zone); ConfigError if it is not one."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a DynamoDB Streams position (an ISO date-time, then "
            "'|<table>/<shardId>=<sequence number or done>' per shard)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StreamPosition:
    """Where a task is in its tables' streams (see the module docstring)."""

    watermark: datetime
    since: datetime | None = None
    shards: tuple[tuple[str, str], ...] = ()

    # -- order: by watermark ----------------------------------------------------------

    def __lt__(self, other: Any) -> bool:
        return self.watermark < _watermark(other)

    def __le__(self, other: Any) -> bool:
        return self.watermark <= _watermark(other)

    def __gt__(self, other: Any) -> bool:
        return self.watermark > _watermark(other)

    def __ge__(self, other: Any) -> bool:
        return self.watermark >= _watermark(other)

    # -- shards -----------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        """The shard's sequence number, ``done``, or None (not read yet)."""
        return dict(self.shards).get(key)

    def with_shard(self, key: str, state: str) -> StreamPosition:
        shards = dict(self.shards)
        shards[key] = state
        return replace(self, shards=tuple(sorted(shards.items())))

    def without(self, keys: set[str]) -> StreamPosition:
        """This position without the shards ``keys`` (gone from the stream)."""
        return replace(self, shards=tuple((k, s) for k, s in self.shards if k not in keys))

    def advanced(self, watermark: datetime) -> StreamPosition:
        """The watermark moved forward to ``watermark`` (never back)."""
        return replace(self, watermark=max(self.watermark, watermark))

    # -- text -------------------------------------------------------------------------

    def __str__(self) -> str:
        parts = [iso(self.watermark)]
        if self.since is not None:
            parts.append(f"since={iso(self.since)}")
        parts += [f"{key}={state}" for key, state in self.shards]
        return "|".join(parts)

    @classmethod
    def parse(cls, text: str) -> StreamPosition:
        head, *rest = text.strip().split("|")
        watermark = parse_time(head)
        if not rest:
            return cls(watermark, since=watermark)
        since = None
        shards: list[tuple[str, str]] = []
        for part in rest:
            name, sep, value = part.partition("=")
            if not sep or not value:
                raise ConfigError(f"{text!r}: {part!r} is not '<table>/<shardId>=<state>'")
            if name == "since":
                since = parse_time(value)
            else:
                shards.append((name, _state(text, value)))
        return cls(watermark, since, tuple(sorted(shards)))


def _state(text: str, value: str) -> str:
    if value != DONE and not value.isdigit():
        raise ConfigError(f"{text!r}: {value!r} is neither a sequence number nor 'done'")
    return value


def _watermark(other: Any) -> datetime:
    if not isinstance(other, StreamPosition):
        raise TypeError(f"cannot compare a DynamoDB Streams position with {other!r}")
    return other.watermark
