"""How one engine's DDL is written: the :class:`DdlDialect` an engine declares for schema
conversion (``Engine.ddl_dialect()``).

A dialect is a table of facts, not code paths: the generator reads its fields where it
once asked which engine the target was. Each endpoint package that converts defines one
(``opendms.endpoints.<engine>.ddldialect``); this module names no engine. A catalog's
source is described by the same object: its :attr:`~DdlDialect.sqlglot` dialect parses
the source's views and checks, and "same engine" is ``source is target``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.schemaobjects import ColumnDef, ForeignKey, TableDef
    from opendms.model import ColumnType

__all__ = ["Comments", "DdlDialect", "FkActions", "Runner", "Session"]

Runner = Callable[[str], None]
"""Runs one DDL statement on a target database."""

Session = Callable[["EndpointURL", bool, list[str]], AbstractContextManager[Runner]]
"""``session(url, throwaway, drop)``: a runner on ``url``; ``throwaway``: nothing it runs
stays (a rolled-back transaction, a memory database), ``drop``: databases to drop at the end."""

FkActions = Callable[["TableDef", "ForeignKey"], tuple[str, str, list[str]]]
"""``(on delete, on update, notes)`` the target takes for a foreign key."""


class Comments(enum.Enum):
    """Where a target keeps table, column and view comments."""

    STATEMENTS = "statements"  # COMMENT ON TABLE / COLUMN / VIEW ... IS '...'
    INLINE = "inline"  # COMMENT '...' on the column, COMMENT= on the table; none on views
    NONE = "none"  # dropped, with a warning


def _unchanged(sql: str) -> str:
    return sql


@dataclass(frozen=True)
class DdlDialect:
    """One engine as a schema conversion source and target.

    ``name`` is how reports and messages name it (``report.json``'s engines, the
    ``schema.sql`` header) and ``title`` how sentences begin with it. The defaults
    describe a target with none of the features or limits a field names.
    """

    # -- naming, SQL and running it ------------------------------------------------------
    name: str
    title: str
    sqlglot: Any
    """The sqlglot dialect (a name or a Dialect class) reading and writing its SQL."""
    session: Session
    column_type: Callable[[ColumnType, bool, bool], str]
    """``(type, in a key, same engine as the source)`` -> the column's type name."""
    prepare: Callable[[str], str] = _unchanged
    """Cleans the engine's catalog SQL before sqlglot parses it (as a source)."""
    quote: str = '"'
    backslash_escapes: bool = False
    """String literals escape backslashes."""
    name_limit: int = 63
    """Longest constraint and index name."""
    schema_keyword: str = ""
    """What a schema is created as (SCHEMA, DATABASE); "": no schemas, DDL is unqualified."""
    keeps_schemas: bool = False
    """Objects keep their source schema by default (else DDL is unqualified)."""
    database_schema: bool = False
    """A task's tables go to the database its target URL names (a database is a schema)."""

    # -- types -----------------------------------------------------------------------------
    type_note: Callable[[ColumnDef, str, bool], str] | None = None
    """``(column, its type, in a key)`` -> what the target's type changes ("": nothing)."""
    arrays: bool = False
    """Array types, ARRAY values and unnest()."""
    intervals: bool = False
    enum_types: bool = False
    """CREATE TYPE ... AS ENUM (as a source: enum columns name their type)."""
    enum_note: str = ""
    """What an enum type becomes instead (no enum types)."""
    enum_checks: bool = False
    """Enum columns are checked against their labels by a CHECK constraint."""
    domains: bool = False
    if_missing: str = ""
    """Wraps an enum or domain statement ({}) so it is skipped when the type exists."""
    sequences: bool = False
    """Standalone sequences."""
    identity: str = ""
    """The clause of an identity column."""
    identity_name: str = ""
    """What a sequence used by columns becomes, for the report."""
    identity_key: str = ""
    """Why an identity column must lead a key ("": it need not)."""
    rowid_type: str = ""
    """The type of a single integer identity key that becomes the row id (its identity
    clause then holds PRIMARY KEY); "": identity columns anywhere."""

    # -- columns and defaults ----------------------------------------------------------------
    generated_not_null: bool = True
    """A generated column may be declared NOT NULL."""
    expression_default_types: frozenset[str] = frozenset()
    """Column types whose default must be a parenthesized expression."""
    boolean_literals: bool = True
    """TRUE / FALSE (else 1 / 0)."""
    special_dates: bool = False
    """Date input words such as 'infinity' and 'epoch' in defaults."""
    current_date: str = "CURRENT_DATE"
    current_time: str = "CURRENT_TIME"
    timestamp_precision: bool = False
    """CURRENT_TIMESTAMP(p) with the column's precision, at most 6."""
    on_update_timestamp: bool = False
    """ON UPDATE CURRENT_TIMESTAMP columns."""

    # -- tables and constraints ----------------------------------------------------------------
    table_options: str = ""
    """Appended to every CREATE TABLE."""
    comments: Comments = Comments.STATEMENTS
    partitions: bool = False
    """Declarative partitioning, kept from a source of the same engine."""
    inline_constraints: bool = False
    """Constraints are written inside CREATE TABLE (no ALTER TABLE ADD CONSTRAINT)."""
    fk_actions: FkActions | None = None
    """The referential actions it takes instead of the source's (None: the source's)."""
    volatile_checks: bool = True
    """CHECK constraints may call the clock, random values or UUIDs."""
    regexp: bool = True
    """A REGEXP function exists for CHECK constraints."""

    # -- indexes -----------------------------------------------------------------------------
    index_definitions: bool = False
    """As a source: an expression index comes as its whole CREATE INDEX statement."""
    index_using: bool = False
    """An index's access method is written as USING method."""
    index_kinds: frozenset[str] = frozenset()
    """Access methods written as a kind of index (CREATE FULLTEXT INDEX)."""
    json_index: bool = True
    """JSON columns can be indexed."""
    index_prefix: int = 0
    """Long text and binary columns outside keys are indexed on this many characters."""
    prefix_over: int = 0
    """Text and binary columns longer than this many characters are long (see
    :attr:`index_prefix`)."""

    # -- views -------------------------------------------------------------------------------
    materialized_views: bool = False
    builtins_shadow: bool = False
    """A call to a source function named like one of its built-ins runs the built-in."""
    string_agg_note: str = "string aggregation ({sql}) was translated; verify the results"
    """The warning of a translated string aggregation ({sql}: the call)."""

    # -- its part of the report's advice (see opendms.convert.advice) -------------------
    search_index: str = ""
    """Its full-text search feature, instead of another engine's GiST/GIN/FULLTEXT index."""
    sequence_note: str = ""
    """What it also offers instead of standalone sequences (see :attr:`identity_name`)."""
    routine_language: str = ""
    """What a source function is rewritten in."""
    trigger_advice: str = ""
    """How a trigger is recreated (a clause naming the engine)."""

    def q(self, name: str) -> str:
        """``name`` as a quoted identifier."""
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote

    def string(self, value: str) -> str:
        """``value`` as a string literal."""
        text = value.replace("'", "''")
        return "'" + (text.replace("\\", "\\\\") if self.backslash_escapes else text) + "'"
