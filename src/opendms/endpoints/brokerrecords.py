"""Change records as broker messages, shared by the ``nats://`` and ``redis://`` targets.

A message body is one :class:`~opendms.envelope.ChangeRecord`, in the endpoint's
``MessageFormat``: ``json`` (:func:`opendms.envelope.record_text`, the default) or
``arrow`` (an Arrow IPC stream of one :func:`opendms.envelope.to_arrow` row).

Records carry the *target* table's schema, name and column names (the task's mapping
rules apply, as for any target). Full-load rows are ``I`` records whose ``position`` is
``load`` and whose ``transaction_id`` is empty; a full load that prepares a table
(``DROP_AND_CREATE`` or ``TRUNCATE_BEFORE_LOAD``) first sends a ``T`` record for it, so a
consumer folding the records by key starts the table afresh.

:func:`fold` is the read-back: a table's records, in stream order, folded by key into
its current rows (``I`` sets a row, ``U`` merges its after-image into the row, ``D``
removes it, ``T`` empties the table).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from opendms.changes import ApplyPlan, Transaction
from opendms.envelope import (
    ARROW_SCHEMA,
    ChangeRecord,
    commit_text,
    from_json,
    record_text,
    records_of,
    to_arrow,
)
from opendms.errors import DataError
from opendms.model import Table, arrow_type

LOAD_POSITION = "load"
"""The ``position`` of full-load records (they precede every CDC position)."""

Row = dict[str, Any]


class MessageFormat(enum.StrEnum):
    """How a record is encoded in a message body."""

    JSON = "json"
    ARROW = "arrow"


def encode(record: ChangeRecord, fmt: MessageFormat) -> bytes:
    """The message body of ``record``."""
    if fmt is MessageFormat.JSON:
        return record_text(record).encode("utf-8")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ARROW_SCHEMA) as writer:
        writer.write_batch(to_arrow([record]))
    return bytes(sink.getvalue().to_pybytes())


def decode(body: bytes, where: str) -> ChangeRecord:
    """The record of a message body in either format (DataError when it is neither)."""
    if body[:1] == b"{":
        try:
            return from_json(json.loads(body))
        except ValueError as exc:
            raise DataError(where, f"a message is not JSON ({exc})") from None
    try:
        rows = pa.ipc.open_stream(body).read_all().to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(where, f"a message is neither JSON nor Arrow IPC ({exc})") from None
    return from_json(_arrow_row(rows[0]))


def _arrow_row(row: Row) -> Row:
    """An Arrow row back in :func:`opendms.envelope.to_json` form."""
    out = dict(row)
    out["commit_time"] = commit_text(row["commit_time"])
    for name in ("key", "before", "after"):
        out[name] = None if row[name] is None else json.loads(row[name])
    out["key"] = out["key"] or {}
    return out


# -- records of a full load and of CDC batches -----------------------------------------


def now_text() -> str:
    return commit_text(datetime.now(UTC))


def load_records(table: Table, batch: pa.RecordBatch, start: int) -> list[ChangeRecord]:
    """Full-load ``I`` records of ``batch``'s rows (``start``: the index of its first row
    in the table's load, their ``sequence``)."""
    stamp, names = now_text(), table.primary_key
    return [
        ChangeRecord(
            "I",
            table.schema,
            table.name,
            stamp,
            LOAD_POSITION,
            "",
            start + i,
            key={n: row[n] for n in names if n in row},
            after=row,
        )
        for i, row in enumerate(batch.to_pylist())
    ]


def truncate_record(table: Table) -> ChangeRecord:
    """The ``T`` record a full load sends before loading ``table`` again."""
    return ChangeRecord("T", table.schema, table.name, now_text(), LOAD_POSITION, "", 0)


class Plans:
    """The tables of a CDC task by source name, and their records in target terms."""

    def __init__(self, plans: list[ApplyPlan]) -> None:
        self.by_source = {(p.source.schema, p.source.name): p for p in plans}
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {}
        self._kept = {k for k, p in self.by_source.items() if _keeps_names(p)}

    def update(self, plan: ApplyPlan) -> None:
        key = (plan.source.schema, plan.source.name)
        self.by_source[key] = plan
        self._keys.clear()
        self._kept.discard(key)
        if _keeps_names(plan):
            self._kept.add(key)

    def drop(self, schema: str, table: str) -> None:
        self.by_source.pop((schema, table), None)
        self._keys.clear()
        self._kept.discard((schema, table))

    def records(self, batch: list[Transaction]) -> list[ChangeRecord]:
        """Every record of ``batch``, in order, named as on the target."""
        out: list[ChangeRecord] = []
        for txn in batch:
            out += [self._target(r) for r in records_of(txn, self._key_of)]
        return out

    def _key_of(self, schema: str, table: str) -> tuple[str, ...]:
        found = self._keys.get((schema, table))
        if found is None:
            found = self._keys[(schema, table)] = self._source_key(schema, table)
        return found

    def _source_key(self, schema: str, table: str) -> tuple[str, ...]:
        """The source names of the target table's key columns."""
        plan = self.by_source.get((schema, table))
        if plan is None:
            return ()
        back = {t: s for s, t in plan.names.items()}
        return tuple(back.get(k, k) for k in plan.target.primary_key)

    def _target(self, record: ChangeRecord) -> ChangeRecord:
        plan = self.by_source.get((record.schema, record.table))
        if plan is None or (record.schema, record.table) in self._kept:
            return record
        names, kept = plan.names, {c.name for c in plan.target.columns}

        def rename(row: Row | None) -> Row | None:
            """A row in target names, without the columns the target does not take."""
            if row is None:
                return None
            return {names.get(c, c): v for c, v in row.items() if names.get(c, c) in kept}

        return ChangeRecord(
            record.op, plan.target.schema, plan.target.name, record.commit_time,
            record.position, record.transaction_id, record.sequence,
            rename(record.key) or {}, rename(record.before), rename(record.after),
            tuple(names.get(c, c) for c in record.unchanged_columns), record.ddl,
        )  # fmt: skip


class RecordApplier:
    """What the broker appliers share: the task's plans, kept current through schema
    changes and drops; records are sent as they come (no batch hint, no forced flush);
    the target holds the connection. Subclasses read and write the checkpoint and apply
    (the apply error policies have nothing to act on: a broker takes every record)."""

    def __init__(self, plans: list[ApplyPlan]) -> None:
        self.plans = Plans(plans)

    def schema_changed(self, plan: ApplyPlan) -> None:
        self.plans.update(plan)

    def table_dropped(self, schema: str, table: str) -> None:
        self.plans.drop(schema, table)

    def batch_hint(self) -> tuple[float, int] | None:
        return None

    def must_flush_at(self) -> str | None:
        return None

    def close(self) -> None:
        """The target holds the connection."""


def _keeps_names(plan: ApplyPlan) -> bool:
    """True when the plan keeps the source table's and every column's name."""
    same_table = (plan.target.schema, plan.target.name) == (plan.source.schema, plan.source.name)
    columns = {c.name for c in plan.target.columns}
    copied = all(s == t for s, t in plan.names.items())
    return same_table and copied and columns == {c.name for c in plan.source.columns}


# -- read-back --------------------------------------------------------------------------


def fold(records: Iterable[ChangeRecord], table: Table) -> dict[str, Row]:
    """The current rows of ``table`` after ``records`` (in stream order), by key."""
    names = table.primary_key or tuple(c.name for c in table.columns)
    rows: dict[str, Row] = {}
    for record in records:
        if record.op == "T":
            rows.clear()
        elif record.op in ("I", "U", "D"):
            _fold_one(rows, record, names)
    return rows


def _key_text(names: tuple[str, ...], row: Row) -> str:
    return json.dumps([str(row.get(n)) for n in names])


def _fold_one(rows: dict[str, Row], record: ChangeRecord, names: tuple[str, ...]) -> None:
    old: Row = {}
    if record.op != "I":
        old = rows.pop(_key_text(names, {**(record.before or {}), **record.key}), {})
    if record.op == "D" or record.after is None:
        return
    row = {**old, **record.after} if record.op == "U" else dict(record.after)
    rows[_key_text(names, row)] = row


def batches(
    rows: Iterable[Row], table: Table, columns: tuple[str, ...], size: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Folded rows as Arrow batches of ``columns`` in ``table``'s canonical types."""
    listed = list(rows)
    for start in range(0, max(len(listed), 1), size):
        chunk = listed[start : start + size]
        arrays = [_column(table, name, [r.get(name) for r in chunk]) for name in columns]
        yield pa.RecordBatch.from_arrays(arrays, names=list(columns))


def _column(table: Table, name: str, values: list[Any]) -> pa.Array[Any]:
    """A column's values (canonical values, or a PostgreSQL source's text forms)."""
    atype = arrow_type(table.column(name).type)
    try:
        return pa.array(values, atype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        text = pa.array([None if v is None else str(v) for v in values], pa.string())
        return text.cast(atype)
