"""Change data capture vocabulary: positions, row changes and source transactions.

A source streams :class:`Transaction` objects in commit order; a target applies
a batch of them and records the batch's :class:`Position` in the same target
transaction, so a restart resumes exactly after the last applied change.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from opendms.errors import ConfigError
from opendms.evolve import Pair, plan_after
from opendms.model import ColumnType, Table, TableRef

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True, order=True)
class LSN:
    """A PostgreSQL WAL position (``16/B374D848``)."""

    value: int

    @classmethod
    def parse(cls, text: str) -> LSN:
        m = _LSN.match(text.strip())
        if not m:
            raise ConfigError(f"{text!r} is not a PostgreSQL LSN (like 16/B374D848)")
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"


_BINLOG = re.compile(r"^(.*?)\.?(\d+):(\d+)$")


@dataclass(frozen=True, order=True)
class BinlogPosition:
    """A MySQL/MariaDB binlog position, ordered by (file number, offset).

    ``gtid`` is the GTID state after this position when the server uses GTIDs
    (MariaDB ``0-1-42,1-2-7``; MySQL ``uuid:1-42``); it is carried, not compared.
    The text form is ``mysql-bin.000003:1234`` or ``mysql-bin.000003:1234@<gtid>``.
    """

    file_number: int
    offset: int
    file: str = field(compare=False, default="")
    gtid: str = field(compare=False, default="")

    @classmethod
    def parse(cls, text: str) -> BinlogPosition:
        head, _, gtid = text.strip().partition("@")
        m = _BINLOG.match(head)
        if not m:
            raise ConfigError(f"{text!r} is not a binlog position (like mysql-bin.000003:1234)")
        file = head.rsplit(":", 1)[0]
        return cls(int(m.group(2)), int(m.group(3)), file, gtid)

    def __str__(self) -> str:
        text = f"{self.file}:{self.offset}"
        return f"{text}@{self.gtid}" if self.gtid else text


@dataclass(frozen=True, order=True)
class SeqPosition:
    """A position in a change table (SQLite trigger capture): the last sequence number."""

    value: int

    @classmethod
    def parse(cls, text: str) -> SeqPosition:
        try:
            return cls(int(text.strip()))
        except ValueError:
            raise ConfigError(f"{text!r} is not a change-table sequence number") from None

    def __str__(self) -> str:
        return str(self.value)


class Position(Protocol):
    """A source position (:class:`LSN`, :class:`BinlogPosition`, :class:`SeqPosition`).

    Positions of one source kind are totally ordered; kinds are never mixed. The
    text form (``str``) is what checkpoints store and ``parse_position`` reads.
    """

    def __lt__(self, other: Any) -> bool: ...

    def __le__(self, other: Any) -> bool: ...

    def __gt__(self, other: Any) -> bool: ...

    def __ge__(self, other: Any) -> bool: ...


class Op(enum.StrEnum):
    """DMS operation letters (the lake's ``Op`` column uses them)."""

    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"
    TRUNCATE = "T"
    DDL = "DDL"


@dataclass(frozen=True)
class ColumnChange:
    """One column-level schema change carried by an :data:`Op.DDL` change.

    ``add``: ``column`` with ``ctype``; ``drop``: ``column``; ``alter_type``:
    ``column`` to ``ctype``; ``rename``: ``column`` to ``new_name`` (a MySQL
    ``CHANGE COLUMN a b type`` is a rename plus an alter_type).
    """

    action: Literal["add", "drop", "alter_type", "rename"]
    column: str
    ctype: ColumnType | None = None
    new_name: str | None = None
    nullable: bool = True


_ERROR_COLUMN = re.compile(r"column (.+?): ")


@dataclass(frozen=True)
class TableChange:
    """A table-level schema change carried by an :data:`Op.DDL` change.

    ``create``: ``table`` is the new source table; ``drop``; ``rename``: to
    ``new_schema``.``new_name``; ``columns``: ``table`` holds the columns the source
    sends for the table now (a PostgreSQL relation message), for the engine to
    compare with what it knows (never counted, never applied as it is).
    """

    action: Literal["create", "drop", "rename", "columns"]
    table: Table | None = None
    new_schema: str = ""
    new_name: str = ""


class _Unchanged:
    """The type of :data:`UNCHANGED`: one object, itself again after pickling (the
    handlers' outbox pickles changes)."""

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
"""Marks a value the source did not send (an unchanged TOASTed column)."""


@dataclass(frozen=True)
class Change:
    """One row change. Values are the source's text forms (``None`` = NULL).

    ``key`` holds the old key (or old row) values for updates and deletes by
    the column names in ``key_columns``; ``values`` the new row for inserts and
    updates, where :data:`UNCHANGED` marks columns to leave as they are.
    ``old_columns``/``old_values`` hold the old row of an update or delete where
    the source sent more of it than the key (a MySQL/MariaDB FULL row image when
    the capture was asked for old rows, SQLite capture); they are empty otherwise
    (a PostgreSQL REPLICA IDENTITY FULL old row is the ``key``). See :meth:`before`.
    """

    op: Op
    schema: str
    table: str
    columns: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    key_columns: tuple[str, ...] = ()
    key: tuple[Any, ...] = ()
    ddl: tuple[ColumnChange, ...] = ()
    table_ddl: TableChange | None = None
    stat: str | None = None  # the op letter statistics count (None: ``op``; "": none)
    error: str = ""  # the source could not decode this row: why ("column X: why", ...)
    old_columns: tuple[str, ...] = ()
    old_values: tuple[Any, ...] = ()
    origin: int = field(default=0, compare=False)
    """The source's own sequence number of this change, where its capture has one and
    groups changes into transactions of its own making (SQLite's change-table seq): the
    change's record takes its position from it, so a change captured again after a
    restart, in another grouping, keeps its record id. 0: the transaction's end."""

    def error_column(self) -> str:
        """The column a source's decode ``error`` names (``column X: why``), else ""."""
        m = _ERROR_COLUMN.match(self.error)
        return m.group(1) if m else ""

    def before(self) -> dict[str, Any]:
        """The old row as far as the source sent it: the whole row, or only the key."""
        if self.old_columns:
            return dict(zip(self.old_columns, self.old_values, strict=True))
        return dict(zip(self.key_columns, self.key, strict=True))


_ROW_FIELDS = ("op", "schema", "table", "columns", "values", "key_columns", "key")
_CHANGE_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(Change)
    if f.default is not dataclasses.MISSING and f.name not in _ROW_FIELDS
}
_new = Change.__new__
_set = object.__setattr__


def row_change(
    op: Op,
    schema: str,
    table: str,
    columns: tuple[str, ...] = (),
    values: tuple[Any, ...] = (),
    key_columns: tuple[str, ...] = (),
    key: tuple[Any, ...] = (),
) -> Change:
    """A row change for a decoder's hot loop: the same object as ``Change(...)``, built
    without the frozen dataclass ``__init__`` (about 3x faster); every other field takes
    its default, whatever fields Change has."""
    change: Change = _new(Change)
    _set(
        change,
        "__dict__",
        {
            "op": op,
            "schema": schema,
            "table": table,
            "columns": columns,
            "values": values,
            "key_columns": key_columns,
            "key": key,
            **_CHANGE_DEFAULTS,
        },
    )
    return change


@dataclass
class Transaction:
    """A committed source transaction, in commit order.

    ``end`` is the position just after the commit: resuming at ``end`` starts
    with the next transaction.
    """

    xid: int
    commit_time: datetime
    end: Position
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyPlan:
    """How one captured source table lands on its target table.

    ``names`` maps source column -> target column for the copied columns.
    """

    source: Table
    target: Table
    names: dict[str, str]

    @property
    def label(self) -> str:
        return self.source.qualified

    def source_type(self, column: str) -> ColumnType:
        return self.source.column(column).type

    def target_type(self, column: str) -> ColumnType:
        return self.target.column(column).type

    def target_name(self, cc: ColumnChange) -> str | None:
        """The target column a column change acts on (None: not copied)."""
        return cc.column if cc.action == "add" else self.names.get(cc.column)

    def after(self, cc: ColumnChange) -> ApplyPlan:
        """This plan once ``cc`` ran on the source and, applied, on the target
        (:func:`opendms.evolve.plan_after`)."""
        pair = plan_after(Pair(self.source, self.target, self.names), cc)
        return ApplyPlan(pair.source, pair.target, pair.names)


@dataclass(frozen=True)
class Backlog:
    """What a CDC task's source keeps for it and it has not applied yet: ``amount`` of
    ``unit`` ("bytes" of WAL/binlog, or "changes" in a change table); ``what`` says it in
    words. ``gone`` is set when the capture objects or the log it needs no longer exist."""

    amount: int
    unit: Literal["bytes", "changes"]
    what: str
    gone: bool = False


class ChangeLifecycle(Protocol):
    """The capture objects a task keeps on its source (slot, triggers, binlog access)."""

    def prepare(self, tables: list[TableRef]) -> None:
        """Check prerequisites and set up capture objects (idempotent)."""

    def exists(self) -> bool:
        """True when the capture objects that a saved position needs still exist."""

    def drop(self) -> None:
        """Remove capture objects (task deleted, or a fresh start)."""

    def backlog(self, applied: str | None) -> Backlog:
        """What the source retains for this task beyond ``applied`` (a saved position
        text, None when unknown), whether or not the task runs."""

    def close(self) -> None: ...


class ChangeSnapshot(Protocol):
    """Where a new full load starts, and the snapshot it may read under."""

    consistent_snapshot: bool  # True: the full load reads under the start position

    def start(self) -> tuple[Position, str | None]:
        """A position to stream from after a new full load, and the snapshot the full
        load reads under (None when the engine has no shareable snapshot: the full load
        then races with writes, and changes from the position on are applied
        idempotently until :meth:`ChangePositions.current_position` taken after the load)."""

    def release_snapshot(self) -> None: ...


class ChangeStream(Protocol):
    """Committed transactions, streamed from a position and confirmed once applied.

    Value forms in :class:`Change`: ``"pg-text"`` (PostgreSQL text forms) or
    ``"python"`` (the canonical Python form: what ``pa.array(values,
    arrow_type(ctype)).to_pylist()`` gives for the source column's canonical type).
    """

    value_form: Literal["pg-text", "python"]
    old_rows: set[tuple[str, str]]
    """Tables whose updates and deletes should carry the whole old row where the source
    has it (:attr:`Change.old_values`); set before :meth:`stream` (the lake's ``D`` rows
    and source filters need it; decoding it costs time, so it is asked for)."""

    def stream(self, start: Position, stop: threading.Event) -> Generator[Transaction | None]:
        """Committed transactions after ``start`` (``None`` when idle). A position the
        source no longer has raises TaskError naming it."""

    def caught_up(self) -> bool:
        """True once the stream has delivered everything committed before it began."""

    def confirm(self, position: Position) -> None:
        """The target durably holds everything up to ``position``."""


class ChangePositions(Protocol):
    """The source's typed positions: parsed from saved text, and its current end of log."""

    def parse_position(self, text: str) -> Position: ...

    def current_position(self) -> Position:
        """The source's current end of log (everything committed so far)."""


class ChangeSource(ChangeLifecycle, ChangeSnapshot, ChangeStream, ChangePositions, Protocol):
    """The change source of a CDC task (one per source engine), split by role as
    Debezium splits a connector: lifecycle, snapshot, stream, positions."""


class Applier(Protocol):
    """Apply side of a CDC task (one per target engine)."""

    def read_checkpoint(self) -> str | None: ...

    def write_checkpoint(self, position: str) -> None: ...

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        """Apply ``batch`` and record ``position`` atomically; returns changes applied.

        ``idempotent``: the changes may already be in the target (a full load without
        a shared snapshot): inserts become upserts, updates of missing rows insert the
        after-image, deletes of missing rows are no-ops."""

    def schema_changed(self, plan: ApplyPlan) -> None:
        """The source table's columns changed (after an ``Op.DDL`` change was applied),
        or a table is captured from now on (created or renamed on the source)."""

    def table_dropped(self, schema: str, table: str) -> None:
        """Source table ``schema.table`` is no longer captured (dropped or renamed)."""

    def batch_hint(self) -> tuple[float, int] | None:
        """(seconds a batch may wait, bytes of changes that end a batch) when the target
        decides batch sizes itself (lake files: CdcMaxBatchInterval, CdcMinFileSize);
        None to use the task's BatchApply settings."""

    def must_flush_at(self) -> str | None:
        """A position at which the current batch must end (to rewrite the same files
        after a crash), or None."""

    def close(self) -> None: ...
