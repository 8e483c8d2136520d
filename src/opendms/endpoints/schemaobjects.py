"""The source objects a schema conversion reads, and the items it reports.

A :class:`SourceCatalog` is everything ``opendms convert`` reads from one source
(tables with their constraints, views, enums, sequences, routines, triggers);
an :class:`Item` is one converted object with its status for the report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from opendms.errors import ConfigError
from opendms.model import ColumnType


class Status(enum.StrEnum):
    """How an object was converted (SCT's action-item levels)."""

    CONVERTED = "converted"
    WARNING = "converted with warning"
    MANUAL = "manual"
    FAILED = "failed"  # the target refused the converted DDL (``--apply`` / ``--check``)


KINDS = (
    "tables",
    "views",
    "domains",
    "indexes",
    "constraints",
    "sequences",
    "enums",
    "procedures",
    "functions",
    "triggers",
)


def singular(kind: str) -> str:
    """One object of a report kind: "index" of "indexes", "table" of "tables"."""
    return "index" if kind == "indexes" else kind.removesuffix("s")


@dataclass(frozen=True)
class ColumnDef:
    """A source column: its native type, canonical type and attributes."""

    name: str
    native: str
    type: ColumnType
    nullable: bool = True
    default: str | None = None
    identity: bool = False
    comment: str = ""
    generated: str = ""  # the expression of a generated (computed) column, source dialect
    domain: str = ""  # PostgreSQL: the domain the column was declared with (schema.name)
    on_update: str = ""  # MySQL: ON UPDATE CURRENT_TIMESTAMP and the like


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"


@dataclass(frozen=True)
class Check:
    name: str
    expression: str  # in the source dialect, without the CHECK keyword
    domain: str = ""  # set when it is a domain's check moved onto the column


@dataclass(frozen=True)
class IndexDef:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    expression: str = ""  # set for expression/partial/prefix indexes (source SQL)
    method: str = ""  # a non-B-tree access method: gist, gin, fulltext, spatial, ...


@dataclass(frozen=True)
class Partition:
    name: str
    bound: str  # PostgreSQL: "FOR VALUES FROM (...) TO (...)"; MySQL: the partition clause
    partitioned: bool = False  # itself partitioned (sub-partitions)


@dataclass
class TableDef:
    schema: str
    name: str
    columns: list[ColumnDef]
    primary_key: tuple[str, ...] = ()
    uniques: list[IndexDef] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    indexes: list[IndexDef] = field(default_factory=list)
    comment: str = ""
    partition_by: str = ""  # "RANGE (payment_date)" for a partitioned table
    partitions: list[Partition] = field(default_factory=list)

    def column(self, name: str) -> ColumnDef:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.schema}.{self.name} has no column {name!r}")


@dataclass(frozen=True)
class ViewDef:
    schema: str
    name: str
    definition: str  # the SELECT, in the source dialect
    comment: str = ""
    materialized: bool = False


@dataclass(frozen=True)
class EnumDef:
    schema: str
    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DomainDef:
    """A PostgreSQL domain: a base type with NOT NULL, a default and checks on VALUE."""

    schema: str
    name: str
    base: str  # format_type() of the base type
    not_null: bool = False
    default: str | None = None
    checks: tuple[Check, ...] = ()  # expressions on VALUE


@dataclass(frozen=True)
class SequenceDef:
    schema: str
    name: str
    owned_by: str = ""  # "table.column" for identity/serial sequences
    start: int = 1
    increment: int = 1
    used_by: tuple[str, ...] = ()  # "table.column" of every nextval() default using it


@dataclass(frozen=True)
class CodeObject:
    """A procedure, function, aggregate or trigger: listed, never converted automatically."""

    kind: str  # "procedures", "functions" or "triggers"
    schema: str
    name: str
    definition: str
    table: str = ""  # triggers: the table they fire on
    aggregate: bool = False


@dataclass
class SourceCatalog:
    """Everything read from the selected schemas of one source."""

    engine: str  # the name of the source's DDL dialect
    endpoint: str  # the masked URL
    schemas: list[str]
    tables: list[TableDef] = field(default_factory=list)
    views: list[ViewDef] = field(default_factory=list)
    enums: list[EnumDef] = field(default_factory=list)
    sequences: list[SequenceDef] = field(default_factory=list)
    code: list[CodeObject] = field(default_factory=list)
    domains: list[DomainDef] = field(default_factory=list)

    def check_schemas(self, known: set[str]) -> None:
        """A clear error when a schema asked for is not among the ``known`` ones."""
        missing = [s for s in self.schemas if s not in known]
        if missing:
            raise ConfigError(f"source {self.endpoint}: schema {missing[0]!r} does not exist")


@dataclass
class Item:
    """One object of the conversion report."""

    kind: str
    schema: str
    name: str
    status: Status = Status.CONVERTED
    messages: list[str] = field(default_factory=list)
    remediation: str = ""
    sql: list[str] = field(default_factory=list)
    source_sql: str = ""

    def warn(self, message: str) -> None:
        """Adds a warning (a manual item stays manual)."""
        self.messages.append(message)
        if self.status is Status.CONVERTED:
            self.status = Status.WARNING

    def manual(self, message: str, remediation: str) -> None:
        self.messages.append(message)
        self.status = Status.MANUAL
        self.remediation = remediation

    def fail(self, message: str) -> None:
        """The target refused this object's DDL."""
        self.messages.append(message)
        self.status = Status.FAILED
        if not self.remediation:
            self.remediation = "Fix the statement for the target (see the message) and run it."

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name
