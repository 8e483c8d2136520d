"""Message bodies and ids of change records, made cheaply on the CDC path.

:func:`body` is :func:`opendms.endpoints.brokerrecords.encode`, byte for byte; a JSON
record whose values are all plain (null, booleans, integers, finite floats, strings: the
common case) is written without the envelope's per-value tagging pass. :class:`RecordIds`
is :func:`opendms.envelope.record_id`, the position's sortable form computed once per
transaction rather than once per record."""

from __future__ import annotations

import json
import math
from typing import Any

from opendms.endpoints.brokerrecords import MessageFormat, encode
from opendms.envelope import ChangeRecord, sortable_position

__all__ = ["RecordIds", "body"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_PLAIN = frozenset({type(None), bool, int, str})


def _plain(row: dict[str, Any] | None) -> bool:
    """Whether every value of ``row`` is its own JSON form (no tag, no list)."""
    if row is None:
        return True
    for value in row.values():
        kind = type(value)
        if kind not in _PLAIN and not (kind is float and math.isfinite(value)):
            return False
    return True


def body(record: ChangeRecord, fmt: MessageFormat) -> bytes:
    """The message body of ``record`` (as :func:`brokerrecords.encode` makes it)."""
    if fmt is not MessageFormat.JSON or not (
        _plain(record.key) and _plain(record.before) and _plain(record.after)
    ):
        return encode(record, fmt)
    members = {
        "op": record.op,
        "schema": record.schema,
        "table": record.table,
        "key": record.key,
        "before": record.before,
        "after": record.after,
        "unchanged_columns": list(record.unchanged_columns),
        "commit_time": record.commit_time,
        "position": record.position,
        "transaction_id": record.transaction_id,
        "sequence": record.sequence,
        "ddl": record.ddl,
    }
    return _ENCODER.encode(members).encode("utf-8")


class RecordIds:
    """``record_id`` of records that come transaction by transaction."""

    def __init__(self) -> None:
        self._position, self._sortable = "", ""

    def __call__(self, record: ChangeRecord) -> str:
        if record.position != self._position:
            self._position, self._sortable = record.position, sortable_position(record.position)
        return f"{self._sortable}-{record.sequence:010d}"
