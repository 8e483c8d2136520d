"""Engine-neutral description of tables, columns and canonical types.

Every endpoint maps its native types to :class:`ColumnType` when it reads a
catalog and from :class:`ColumnType` when it creates a table, so a type pair
(source engine, target engine) always goes through one canonical form.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa


class Kind(enum.StrEnum):
    """Canonical type kinds."""

    BOOL = "bool"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    DECIMAL = "decimal"  # precision None = unconstrained (carried as text, never rounded)
    STRING = "string"  # length None = unbounded; fixed=True for CHAR(n)
    BINARY = "binary"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    JSON = "json"
    UUID = "uuid"
    ENUM = "enum"
    ARRAY = "array"


@dataclass(frozen=True)
class ColumnType:
    """A canonical column type with its parameters."""

    kind: Kind
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    fixed: bool = False
    binary_json: bool = False  # jsonb on PostgreSQL
    labels: tuple[str, ...] = ()  # enum labels
    type_name: str | None = None  # enum type name on the source
    element: ColumnType | None = None  # array element
    # The column's own type as a MySQL source declares it (COLUMN_TYPE, e.g.
    # ``tinyint(3) unsigned``): a MySQL target recreates it exactly. Other engines ignore it.
    native: str | None = None

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL and self.precision is not None:
            return f"decimal({self.precision},{self.scale or 0})"
        if self.kind is Kind.STRING and self.length is not None:
            return f"{'char' if self.fixed else 'varchar'}({self.length})"
        if self.kind is Kind.ARRAY and self.element is not None:
            return f"{self.element}[]"
        return self.kind.value

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form that :meth:`from_json` reads back."""
        out: dict[str, Any] = {"kind": self.kind.value}
        for name in ("length", "precision", "scale", "type_name", "native"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.fixed:
            out["fixed"] = True
        if self.binary_json:
            out["binary_json"] = True
        if self.labels:
            out["labels"] = list(self.labels)
        if self.element is not None:
            out["element"] = self.element.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnType:
        element = data.get("element")
        return cls(
            kind=Kind(data["kind"]),
            length=data.get("length"),
            precision=data.get("precision"),
            scale=data.get("scale"),
            fixed=bool(data.get("fixed", False)),
            binary_json=bool(data.get("binary_json", False)),
            labels=tuple(data.get("labels", ())),
            type_name=data.get("type_name"),
            element=cls.from_json(element) if element else None,
            native=data.get("native"),
        )


def T(kind: Kind, **params: Any) -> ColumnType:  # noqa: N802 - short constructor for tables
    """Shorthand used by the per-engine type tables."""
    return ColumnType(kind, **params)


_SIMPLE_ARROW: dict[Kind, pa.DataType] = {
    Kind.BOOL: pa.bool_(),
    Kind.INT16: pa.int16(),
    Kind.INT32: pa.int32(),
    Kind.INT64: pa.int64(),
    Kind.FLOAT32: pa.float32(),
    Kind.FLOAT64: pa.float64(),
    Kind.STRING: pa.string(),
    Kind.BINARY: pa.binary(),
    Kind.DATE: pa.date32(),
    Kind.TIME: pa.time64("us"),
    Kind.TIMESTAMP: pa.timestamp("us"),
    Kind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    Kind.INTERVAL: pa.month_day_nano_interval(),
    Kind.JSON: pa.string(),
    Kind.UUID: pa.string(),
    Kind.ENUM: pa.string(),
}


def arrow_type(ctype: ColumnType) -> pa.DataType:
    """The Arrow type that carries values of ``ctype`` without loss."""
    if ctype.kind is Kind.DECIMAL:
        if ctype.precision is None or ctype.precision > 76:
            return pa.string()  # exact digits as text (decimal256 holds at most 76)
        if ctype.precision <= 38:
            return pa.decimal128(ctype.precision, ctype.scale or 0)
        return pa.decimal256(ctype.precision, ctype.scale or 0)
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        return pa.list_(arrow_type(ctype.element))
    return _SIMPLE_ARROW[ctype.kind]


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    name: str
    type: ColumnType
    nullable: bool = True
    default: str | None = None  # an expression in the source dialect, kept for reports

    def renamed(self, name: str) -> Column:
        return replace(self, name=name)


@dataclass(frozen=True)
class Index:
    """A secondary index, created after the data is loaded."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Table:
    """A table as described by a source catalog (or as planned for a target)."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    estimated_rows: int = 0
    partitions: tuple[str, ...] = ()  # child tables of a partitioned table (PostgreSQL)
    view: bool = False  # a source view, loaded as a table (selection table-type view/all)
    # Planned target only: the primary key's name (define-primary-key), the tablespaces
    # of the table and of its key and indexes (tablespace rules; PostgreSQL targets).
    # Described PostgreSQL source: ``tablespace`` is the table's (pg_default by default).
    primary_key_name: str = ""
    tablespace: str = ""
    index_tablespace: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of batches carrying this table's rows."""
        fields = [
            pa.field(
                c.name,
                arrow_type(c.type),
                nullable=c.nullable,
                metadata={"opendms.type": json.dumps(c.type.to_json())},
            )
            for c in self.columns
        ]
        return pa.schema(fields)


@dataclass(frozen=True)
class TableRef:
    """A schema-qualified table name, as a catalog lists it."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class Filter:
    """One DMS source filter condition on a column (pushed down to the source).

    ``op`` is one of eq, noteq, gte, lte, between, null, notnull; ``values``
    holds the operand(s) as the user wrote them (strings).
    """

    column: str
    op: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilterGroup:
    """Filters on one column are ORed; groups are ANDed."""

    column: str
    conditions: tuple[Filter, ...]


@dataclass(frozen=True)
class Segment:
    """A slice of a table read by one parallel reader.

    ``lower`` (exclusive) and ``upper`` (inclusive) are key tuples as DMS
    ``boundaries`` give them; ``None`` means unbounded. ``partition`` names a
    partition to read instead.
    """

    index: int
    columns: tuple[str, ...] = ()
    lower: tuple[str, ...] | None = None
    upper: tuple[str, ...] | None = None
    partition: str | None = None
    name: str | None = None  # segment-names of parallel-load ranges (lake folders)


@dataclass(frozen=True)
class ReadPlan:
    """What a source reads for one table (or one segment of it)."""

    table: Table
    columns: tuple[str, ...]
    filters: tuple[FilterGroup, ...] = ()
    segment: Segment | None = None
    batch_rows: int = 65536
    extra: dict[str, Any] = field(default_factory=dict)
    # Federated queries (:mod:`opendms.query`) only: predicates already written in the
    # source's own SQL, ANDed with the filters, and a row limit. Other readers leave
    # them empty; sources without SQL ignore them.
    where: tuple[str, ...] = ()
    limit: int | None = None
