"""The source objects a schema conversion reads, and the items it reports.

A :class:`SourceCatalog` is everything ``opendms convert`` reads from one source
(tables with their constraints, views, enums, sequences, routines, triggers);
an :class:`Item` is one converted object with its status for the report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from opendms.model import ColumnType


class Status(enum.StrEnum):
    """How an object was converted (SCT's action-item levels)."""

    CONVERTED = "converted"
    WARNING = "converted with warning"
    MANUAL = "manual"


KINDS = (
    "tables",
    "views",
    "indexes",
    "constraints",
    "sequences",
    "enums",
    "procedures",
    "functions",
    "triggers",
)


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


@dataclass(frozen=True)
class IndexDef:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    expression: str = ""  # set for expression/partial/prefix indexes (source SQL)


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


@dataclass(frozen=True)
class EnumDef:
    schema: str
    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class SequenceDef:
    schema: str
    name: str
    owned_by: str = ""  # "table.column" for identity/serial sequences
    start: int = 1
    increment: int = 1


@dataclass(frozen=True)
class CodeObject:
    """A procedure, function or trigger: listed, never converted automatically."""

    kind: str  # "procedures", "functions" or "triggers"
    schema: str
    name: str
    definition: str
    table: str = ""  # triggers: the table they fire on


@dataclass
class SourceCatalog:
    """Everything read from the selected schemas of one source."""

    engine: str  # "postgresql", "mysql" or "sqlite"
    endpoint: str  # the masked URL
    schemas: list[str]
    tables: list[TableDef] = field(default_factory=list)
    views: list[ViewDef] = field(default_factory=list)
    enums: list[EnumDef] = field(default_factory=list)
    sequences: list[SequenceDef] = field(default_factory=list)
    code: list[CodeObject] = field(default_factory=list)


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

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name
