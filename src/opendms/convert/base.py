"""What every part of the DDL generator shares: statements with their run phase, the
conversion result, where objects go on the target (:class:`Naming`) and name quoting."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from opendms.convert.catalog import dialect_for
from opendms.endpoints.base import target_index_name
from opendms.endpoints.ddldialect import DdlDialect
from opendms.endpoints.schemaobjects import Item, SourceCatalog, TableDef


class Phase(enum.IntEnum):
    SCHEMAS = 0
    TYPES = 1
    SEQUENCES = 2
    TABLES = 3
    CONSTRAINTS = 4
    FOREIGN_KEYS = 5
    INDEXES = 6
    VIEWS = 7
    COMMENTS = 8
    MANUAL = 9


@dataclass(frozen=True)
class Statement:
    """One statement of the script, the source table it belongs to and its report item."""

    phase: Phase
    sql: str
    table: tuple[str, str] | None = None  # the source (schema, table) it belongs to
    item: Item | None = field(default=None, compare=False, hash=False)
    creates: str = ""  # TYPES: the qualified name of the type or domain it creates


@dataclass
class Conversion:
    """The generated statements and report items."""

    source: str
    target: str
    items: list[Item] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # statement index -> target error

    def ordered(self) -> list[tuple[int, Statement]]:
        """(index, statement) in run order."""
        return sorted(enumerate(self.statements), key=lambda pair: pair[1].phase)

    def ddl(self) -> list[str]:
        """Executable statements in run order (manual notes excluded)."""
        return [s.sql for _, s in self.ordered() if s.phase is not Phase.MANUAL]

    def script(self) -> str:
        """``schema.sql``: statements the target refused are commented out with the error."""
        parts = []
        for index, stmt in self.ordered():
            error = self.refused.get(index)
            if stmt.phase is Phase.MANUAL:
                parts.append(f"{stmt.sql}\n\n")
            elif error is not None:
                commented = "\n".join(f"-- {line}" for line in f"{stmt.sql};".splitlines())
                parts.append(f"-- FAILED on the target: {error}\n{commented}\n\n")
            else:
                parts.append(f"{stmt.sql};\n\n")
        return "".join(parts)


@dataclass
class Naming:
    """Where converted objects go on the target.

    By default targets that keep schemas (PostgreSQL) keep the source schema names and the
    DDL of the others is unqualified; ``target_schema`` puts everything in one schema
    (database), ``schemas`` maps source schemas one by one, ``tables`` renames single
    tables (a task's rules).
    """

    target_schema: str | None = None
    schemas: dict[str, str] = field(default_factory=dict)
    tables: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def schema_of(naming: Naming, schema: str, target: DdlDialect) -> str:
    """The target schema of source ``schema`` ("" for unqualified DDL)."""
    if schema in naming.schemas:
        return naming.schemas[schema]
    if naming.target_schema is not None:
        return naming.target_schema
    return schema if target.keeps_schemas else ""


class GeneratorBase:
    """Names, quoting and the bookkeeping of statements and items. ``source`` and
    ``target`` are dialects: the same object when both are of one engine."""

    def __init__(
        self, catalog: SourceCatalog, target: DdlDialect, naming: Naming | None = None
    ) -> None:
        self.catalog = catalog
        self.source = dialect_for(catalog.engine)
        self.target = target
        self.naming = naming or Naming()
        self.out = Conversion(catalog.engine, target.name)

    def q(self, name: str) -> str:
        return self.target.q(name)

    def schema_of(self, schema: str) -> str:
        return schema_of(self.naming, schema, self.target)

    def qualify(self, schema: str, name: str) -> str:
        target_schema = self.schema_of(schema)
        return f"{self.q(target_schema)}.{self.q(name)}" if target_schema else self.q(name)

    def target_table(self, schema: str, name: str) -> tuple[str, str]:
        """The (target schema, target name) of a source table."""
        return self.naming.tables.get((schema, name), (self.schema_of(schema), name))

    def table_sql(self, schema: str, name: str) -> str:
        """The target name of a source table as DDL writes it (unqualified on targets
        without schemas)."""
        target_schema, target_name = self.target_table(schema, name)
        if target_schema and self.target.schema_keyword:
            return f"{self.q(target_schema)}.{self.q(target_name)}"
        return self.q(target_name)

    def object_name(self, table: TableDef, name: str) -> str:
        """A constraint or index name, prefixed with the (target) table name."""
        target_name = self.target_table(table.schema, table.name)[1]
        return target_index_name(target_name, name)[: self.target.name_limit]

    def emit(
        self,
        phase: Phase,
        sql: str,
        table: TableDef | None = None,
        item: Item | None = None,
        creates: str = "",
    ) -> None:
        key = (table.schema, table.name) if table else None
        self.out.statements.append(Statement(phase, sql, key, item, creates))
        if item is not None and phase is not Phase.MANUAL and sql not in item.sql:
            item.sql.append(sql)

    def item(self, kind: str, schema: str, name: str) -> Item:
        found = Item(kind, schema, name)
        self.out.items.append(found)
        return found
