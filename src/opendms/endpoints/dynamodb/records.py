"""DynamoDB Streams records as row changes of a described table. I/O-free.

``INSERT`` -> :data:`Op.INSERT` with the ``NewImage``; ``MODIFY`` -> :data:`Op.UPDATE`
with the ``NewImage``, keyed by ``Keys`` (a DynamoDB key never changes); ``REMOVE`` ->
:data:`Op.DELETE` keyed by ``Keys``. With ``whole`` (the task asked for old rows) and an
``OldImage`` (``NEW_AND_OLD_IMAGES`` streams), updates and deletes carry the old item too.
Values are decoded into the table's columns as the full load decodes them
(:func:`.decode.canonical`), so the same item gives the same row either way; attributes
that are not columns are left out. A value that does not fit its column makes the
change a data error (``Change.error``; the value kept as its JSON text)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from opendms.changes import Change, Op
from opendms.endpoints.dynamodb.decode import Item, MismatchError, attribute, canonical, json_text
from opendms.model import Table

__all__ = ["OPS", "change_of", "created", "sequence"]

OPS = {"INSERT": Op.INSERT, "MODIFY": Op.UPDATE, "REMOVE": Op.DELETE}


def sequence(record: Mapping[str, Any]) -> str:
    """The record's sequence number (digits)."""
    return str(record["dynamodb"]["SequenceNumber"])


def created(record: Mapping[str, Any]) -> datetime:
    """When the record was written (``ApproximateCreationDateTime``, UTC)."""
    when = record["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(when, datetime):
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    if isinstance(when, int | float):
        return datetime.fromtimestamp(when, UTC)
    return datetime.now(UTC)


def _values(
    table: Table, names: tuple[str, ...], item: Item, problems: list[str]
) -> tuple[Any, ...]:
    out = []
    for name in names:
        value = attribute(item, name)
        try:
            out.append(canonical(value, table.column(name).type))
        except MismatchError as exc:
            out.append(None if value is None else json_text(value))
            problems.append(f"column {name}: {exc}")
    return tuple(out)


def change_of(table: Table, record: Mapping[str, Any], whole: bool) -> Change:
    """The row change of one stream record of ``table``."""
    data = record["dynamodb"]
    op = OPS[record["eventName"]]
    names = tuple(c.name for c in table.columns)
    problems: list[str] = []
    change = Change(op, table.schema, table.name)
    if op is not Op.DELETE:
        values = _values(table, names, data.get("NewImage", {}), problems)
        change = replace(change, columns=names, values=values)
    if op is not Op.INSERT:
        key = _values(table, table.primary_key, data["Keys"], problems)
        change = replace(change, key_columns=table.primary_key, key=key)
        if whole and "OldImage" in data:
            old = _values(table, names, data["OldImage"], problems)
            change = replace(change, old_columns=names, old_values=old)
    return replace(change, error="; ".join(problems)) if problems else change
