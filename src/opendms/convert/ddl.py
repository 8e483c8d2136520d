"""Target DDL from a :class:`SourceCatalog`, with one report item per object.

Statements carry a phase so the script runs in a safe order: schemas, types,
sequences, tables, constraints, foreign keys, indexes, views, comments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sqlglot import exp

from opendms.convert.objects import (
    Check,
    CodeObject,
    ColumnDef,
    EnumDef,
    ForeignKey,
    IndexDef,
    Item,
    SequenceDef,
    SourceCatalog,
    Status,
    TableDef,
    ViewDef,
)
from opendms.convert.sqlx import translate, translate_default
from opendms.endpoints.base import target_index_name
from opendms.endpoints.mysql.types import MAX_VARCHAR, to_mysql
from opendms.endpoints.postgres.types import to_pg
from opendms.endpoints.sqlite.types import to_declared
from opendms.model import ColumnType, Kind

TARGETS = ("postgresql", "mysql", "sqlite")
_INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)
_NAME_LIMIT = {"postgresql": 63, "mysql": 64, "sqlite": 1000}


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
    phase: Phase
    sql: str
    table: tuple[str, str] | None = None  # the source (schema, table) it belongs to


@dataclass
class Conversion:
    """The generated statements and report items."""

    source: str
    target: str
    items: list[Item] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)

    def ddl(self) -> list[str]:
        """Executable statements in run order (manual notes excluded)."""
        ordered = sorted(self.statements, key=lambda s: s.phase)
        return [s.sql for s in ordered if s.phase is not Phase.MANUAL]

    def script(self) -> str:
        ordered = sorted(self.statements, key=lambda s: s.phase)
        return "".join(f"{s.sql}{'' if s.phase is Phase.MANUAL else ';'}\n\n" for s in ordered)


REMEDIATION = {
    "procedures": "Rewrite the procedure in the target's procedural language, "
    "or move its logic into the application.",
    "functions": "Rewrite the function in the target's dialect "
    "(PL/pgSQL or a MySQL stored function), or move its logic into the application.",
    "triggers": "Recreate the trigger on the target: PostgreSQL needs a trigger function "
    "plus CREATE TRIGGER, MySQL a CREATE TRIGGER with the body rewritten.",
}


def sql_string(value: str, target: str) -> str:
    text = value.replace("'", "''")
    return "'" + (text.replace("\\", "\\\\") if target == "mysql" else text) + "'"


class Generator:
    """Converts one catalog to one target engine."""

    def __init__(
        self, catalog: SourceCatalog, target: str, target_schema: str | None = None
    ) -> None:
        self.catalog = catalog
        self.source = catalog.engine
        self.target = target
        self.target_schema = target_schema
        self.out = Conversion(catalog.engine, target)
        self.pg_enums: dict[tuple[str, str], str] = {}  # (schema, type) -> target name

    # -- names -------------------------------------------------------------

    def q(self, name: str) -> str:
        if self.target == "mysql":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def schema_of(self, schema: str) -> str:
        if self.target_schema is not None:
            return self.target_schema
        return schema if self.target == "postgresql" else ""

    def qualify(self, schema: str, name: str) -> str:
        target_schema = self.schema_of(schema)
        return f"{self.q(target_schema)}.{self.q(name)}" if target_schema else self.q(name)

    def object_name(self, table: str, name: str) -> str:
        return target_index_name(table, name)[: _NAME_LIMIT[self.target]]

    def emit(self, phase: Phase, sql: str, table: TableDef | None = None) -> None:
        key = (table.schema, table.name) if table else None
        self.out.statements.append(Statement(phase, sql, key))

    def item(self, kind: str, schema: str, name: str, sql: str = "") -> Item:
        found = Item(kind, schema, name, sql=[sql] if sql else [])
        self.out.items.append(found)
        return found

    # -- driver --------------------------------------------------------------

    def run(self) -> Conversion:
        self.schemas()
        for enum_def in self.catalog.enums:
            self.enum(enum_def)
        for seq in self.catalog.sequences:
            self.sequence(seq)
        for table in self.catalog.tables:
            self.table(table)
        for view in self.catalog.views:
            self.view(view)
        for code in self.catalog.code:
            self.code(code)
        return self.out

    def schemas(self) -> None:
        names = sorted({self.schema_of(s) for s in self.catalog.schemas} - {""})
        word = "SCHEMA" if self.target == "postgresql" else "DATABASE"
        for name in names:
            self.emit(Phase.SCHEMAS, f"CREATE {word} IF NOT EXISTS {self.q(name)}")

    # -- enums and sequences --------------------------------------------------

    def enum(self, enum_def: EnumDef) -> None:
        item = self.item("enums", enum_def.schema, enum_def.name)
        if self.target == "postgresql":
            self.create_enum(item, enum_def.schema, enum_def.name, enum_def.labels)
        elif self.target == "mysql":
            item.messages.append("inlined as ENUM(...) in the columns that use it")
        else:
            item.messages.append("columns use TEXT with a CHECK (... IN (...)) constraint")

    def create_enum(self, item: Item, schema: str, name: str, labels: tuple[str, ...]) -> str:
        qualified = self.qualify(schema, name)
        values = ", ".join(sql_string(v, self.target) for v in labels)
        sql = f"CREATE TYPE {qualified} AS ENUM ({values})"
        item.sql.append(sql)
        self.emit(Phase.TYPES, sql)
        self.pg_enums[(schema, name)] = qualified
        return qualified

    def sequence(self, seq: SequenceDef) -> None:
        item = self.item("sequences", seq.schema, seq.name)
        if seq.owned_by:
            how = {"postgresql": "an identity column", "mysql": "AUTO_INCREMENT"}
            item.messages.append(
                f"converted as {how.get(self.target, 'INTEGER PRIMARY KEY')} on {seq.owned_by}"
            )
            return
        if self.target != "postgresql":
            item.manual(
                f"{self.target} has no standalone sequences",
                "Use an AUTO_INCREMENT/INTEGER PRIMARY KEY column or a counter table, and "
                "change the code calling nextval().",
            )
            return
        sql = (
            f"CREATE SEQUENCE {self.qualify(seq.schema, seq.name)} "
            f"START WITH {seq.start} INCREMENT BY {seq.increment}"
        )
        item.sql.append(sql)
        self.emit(Phase.SEQUENCES, sql)

    # -- tables ----------------------------------------------------------------

    def table(self, table: TableDef) -> None:
        item = self.item("tables", table.schema, table.name)
        inline: list[str] = []
        lines = [self.column_sql(table, col, item) for col in table.columns]
        if table.primary_key and not self.sqlite_rowid(table):
            lines.append("PRIMARY KEY (" + ", ".join(map(self.q, table.primary_key)) + ")")
        if table.primary_key:
            self.item("constraints", table.schema, f"{table.name}.PRIMARY KEY")
        for unique in table.uniques:
            inline += self.unique(table, unique)
        for check in table.checks:
            inline += self.check(table, check)
        inline += self.enum_checks(table)
        for fk in table.foreign_keys:
            inline += self.foreign_key(table, fk)
        sql = self.create_table(table, lines + inline)
        item.sql.append(sql)
        self.emit(Phase.TABLES, sql, table)
        for index in table.indexes:
            self.index(table, index)
        self.comments(table, item)

    def create_table(self, table: TableDef, lines: list[str]) -> str:
        name = self.qualify(table.schema, table.name)
        head = f"CREATE TABLE {name} (\n  " + ",\n  ".join(lines) + "\n)"
        if self.target != "mysql":
            return head
        options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        if table.comment:
            options += f" COMMENT={sql_string(table.comment, 'mysql')}"
        return head + options

    def key_columns(self, table: TableDef) -> set[str]:
        cols = set(table.primary_key)
        for unique in table.uniques:
            cols.update(unique.columns)
        for fk in table.foreign_keys:
            cols.update(fk.columns)
        for other in self.catalog.tables:  # columns other tables reference
            for fk in other.foreign_keys:
                if (fk.ref_schema, fk.ref_table) == (table.schema, table.name):
                    cols.update(fk.ref_columns)
        return cols

    def sqlite_rowid(self, table: TableDef) -> bool:
        """SQLite: a single integer identity key becomes INTEGER PRIMARY KEY AUTOINCREMENT."""
        if self.target != "sqlite" or len(table.primary_key) != 1:
            return False
        col = table.column(table.primary_key[0])
        return col.identity and col.type.kind in _INTEGERS

    def column_sql(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        type_sql = self.type_sql(table, col, item)
        parts = [self.q(col.name), type_sql]
        if col.identity:
            parts.append(self.identity(table, col, item))
        if not col.nullable:
            parts.append("NOT NULL")
        parts.append(self.default(col, type_sql, item))
        if col.comment and self.target == "mysql":
            parts.append(f"COMMENT {sql_string(col.comment, 'mysql')}")
        return " ".join(p for p in parts if p)

    def identity(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        if self.target == "postgresql":
            return "GENERATED BY DEFAULT AS IDENTITY"
        if self.target == "sqlite":
            if self.sqlite_rowid(table):
                return "PRIMARY KEY AUTOINCREMENT"
            item.warn(f"column {col.name}: auto-increment needs a single INTEGER primary key")
            return ""
        firsts = [table.primary_key[:1]] + [u.columns[:1] for u in table.uniques]
        if (col.name,) in firsts:
            return "AUTO_INCREMENT"
        item.warn(f"column {col.name}: AUTO_INCREMENT dropped (the column is not a key)")
        return ""

    def default(self, col: ColumnDef, type_sql: str, item: Item) -> str:
        if col.identity or col.default is None:
            return ""
        result = translate_default(
            col.default, self.target, self.now_sql(col.type), col.type.kind is Kind.BOOL
        )
        if result.warning:
            item.warn(f"column {col.name}: {result.warning}")
        if not result.sql:
            return ""
        if self.target == "mysql" and type_sql in ("LONGTEXT", "LONGBLOB", "JSON"):
            return f"DEFAULT ({result.sql})"  # MySQL 8 allows only expression defaults here
        return f"DEFAULT {result.sql}"

    def now_sql(self, ctype: ColumnType) -> str:
        if ctype.kind not in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
            return ""
        if self.target == "mysql":
            return f"CURRENT_TIMESTAMP({6 if ctype.precision is None else min(ctype.precision, 6)})"
        return "CURRENT_TIMESTAMP"

    # -- types -----------------------------------------------------------------

    def type_sql(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        ctype = col.type
        if self.target == "postgresql":
            sql = self.pg_type(table, col)
        elif self.target == "mysql":
            sql = to_mysql(ctype, col.name in self.key_columns(table))
        else:
            sql = "INTEGER" if self.sqlite_rowid(table) and col.identity else to_declared(ctype)
        warning = self.type_warning(table, col, sql)
        if warning:
            item.warn(f"column {col.name}: {warning}")
        return sql

    def pg_type(self, table: TableDef, col: ColumnDef) -> str:
        ctype = col.type
        element = ctype.element if ctype.kind is Kind.ARRAY else ctype
        if element is None or element.kind is not Kind.ENUM:
            return to_pg(ctype, same_engine=self.source == "postgresql")
        suffix = "[]" if ctype.kind is Kind.ARRAY else ""
        if self.source == "postgresql" and element.type_name:
            schema, _, name = element.type_name.rpartition(".")
            schema, name = schema.strip('"') or table.schema, name.strip('"')
            return self.pg_enums.get((schema, name), self.qualify(schema, name)) + suffix
        enum_name = f"{table.name}_{col.name}"
        item = self.item("enums", table.schema, enum_name)
        item.messages.append(f"created from the ENUM column {table.name}.{col.name}")
        return self.create_enum(item, table.schema, enum_name, element.labels) + suffix

    def type_warning(self, table: TableDef, col: ColumnDef, sql: str) -> str:
        if self.source == self.target:
            return ""
        ctype, native = col.type, col.native.lower()
        if ctype.type_name and ctype.kind in (Kind.STRING, Kind.BINARY):
            return f"type {col.native} has no {self.target} equivalent; mapped to {sql}"
        if "unsigned" in native or native.startswith("set("):
            return f"type {col.native} widened to {sql}"
        if self.target == "postgresql":
            return ""
        if ctype.kind in (Kind.ARRAY, Kind.INTERVAL):
            return f"type {col.native} stored as {sql}"
        if self.target == "mysql":
            return self.mysql_type_warning(table, col, sql)
        return ""

    def mysql_type_warning(self, table: TableDef, col: ColumnDef, sql: str) -> str:
        ctype = col.type
        if ctype.kind is Kind.TIMESTAMPTZ:
            return f"{col.native} stored as {sql} without time zone (values in UTC)"
        if ctype.kind is Kind.DECIMAL and (ctype.precision or 66) > 65:
            return f"{col.native} narrowed to {sql}; wider values are rejected"
        long_text = ctype.kind is Kind.STRING and (ctype.length or MAX_VARCHAR + 1) > MAX_VARCHAR
        if long_text and col.name in self.key_columns(table):
            return f"{col.native} in a key limited to {sql}"
        return ""

    def enum_checks(self, table: TableDef) -> list[str]:
        """SQLite keeps enum labels as a CHECK constraint."""
        if self.target != "sqlite":
            return []
        out = []
        for col in table.columns:
            if col.type.kind is Kind.ENUM and col.type.labels:
                labels = ", ".join(sql_string(v, "sqlite") for v in col.type.labels)
                out.append(f"CHECK ({self.q(col.name)} IN ({labels}))")
        return out

    # -- constraints -------------------------------------------------------------

    def alter(self, table: TableDef, name: str, body: str) -> str:
        return (
            f"ALTER TABLE {self.qualify(table.schema, table.name)} "
            f"ADD CONSTRAINT {self.q(name)} {body}"
        )

    def constraint(self, table: TableDef, name: str, body: str, phase: Phase) -> list[str]:
        """Inline for SQLite (returned), else an ALTER TABLE statement."""
        target_name = self.object_name(table.name, name)
        item = self.item("constraints", table.schema, f"{table.name}.{name}")
        if self.target == "sqlite":
            item.sql.append(f"CONSTRAINT {self.q(target_name)} {body}")
            return item.sql[:]
        sql = self.alter(table, target_name, body)
        item.sql.append(sql)
        self.emit(phase, sql, table)
        return []

    def unique(self, table: TableDef, unique: IndexDef) -> list[str]:
        body = "UNIQUE (" + ", ".join(map(self.q, unique.columns)) + ")"
        return self.constraint(table, unique.name, body, Phase.CONSTRAINTS)

    def check(self, table: TableDef, check: Check) -> list[str]:
        result = translate(check.expression, self.source, self.target)
        if result.error:
            item = self.item("constraints", table.schema, f"{table.name}.{check.name}")
            item.source_sql = check.expression
            item.manual(
                f"check constraint could not be translated: {result.error}",
                "Rewrite the CHECK expression in the target dialect and add it by hand.",
            )
            return []
        body = result.sql if result.sql.startswith("(") else f"({result.sql})"
        out = self.constraint(table, check.name, f"CHECK {body}", Phase.CONSTRAINTS)
        for warning in result.warnings:
            self.out.items[-1].warn(warning)
        return out

    def foreign_key(self, table: TableDef, fk: ForeignKey) -> list[str]:
        on_delete, on_update, notes = fk.on_delete, fk.on_update, []
        if self.target == "mysql" and "SET DEFAULT" in (on_delete, on_update):
            notes.append("ON ... SET DEFAULT is not supported by InnoDB; replaced by NO ACTION")
            on_delete = "NO ACTION" if on_delete == "SET DEFAULT" else on_delete
            on_update = "NO ACTION" if on_update == "SET DEFAULT" else on_update
        if fk.ref_schema not in self.catalog.schemas:
            notes.append(f"references {fk.ref_schema}.{fk.ref_table} outside the converted schemas")
        ref = self.qualify(fk.ref_schema, fk.ref_table)
        if self.target == "sqlite":
            ref = self.q(fk.ref_table)
        body = (
            f"FOREIGN KEY ({', '.join(map(self.q, fk.columns))}) REFERENCES {ref} "
            f"({', '.join(map(self.q, fk.ref_columns))}) "
            f"ON DELETE {on_delete} ON UPDATE {on_update}"
        )
        out = self.constraint(table, fk.name, body, Phase.FOREIGN_KEYS)
        for note in notes:
            self.out.items[-1].warn(note)
        return out

    # -- indexes -------------------------------------------------------------------

    def index(self, table: TableDef, index: IndexDef) -> None:
        item = self.item("indexes", table.schema, f"{table.name}.{index.name}")
        if index.expression and self.source == "postgresql":
            item.source_sql = index.expression
            item.manual(
                "expression, partial or INCLUDE index",
                "Recreate the index by hand with the target's expression syntax.",
            )
            return
        if index.expression:
            item.warn(f"{index.expression} became an index on the whole column")
        parts = [self.index_part(table, c, item) for c in index.columns]
        name = self.object_name(table.name, index.name)
        unique = "UNIQUE " if index.unique else ""
        on = self.qualify(table.schema, table.name)
        if self.target == "sqlite":
            on = self.q(table.name)
        sql = f"CREATE {unique}INDEX {self.q(name)} ON {on} ({', '.join(parts)})"
        item.sql.append(sql)
        self.emit(Phase.INDEXES, sql, table)

    def index_part(self, table: TableDef, column: str, item: Item) -> str:
        ctype = table.column(column).type
        long_text = ctype.kind in (Kind.STRING, Kind.BINARY) and (ctype.length or 10**9) > 768
        if self.target == "mysql" and long_text and column not in self.key_columns(table):
            item.warn(f"column {column} is indexed on its first 255 characters")
            return f"{self.q(column)}(255)"
        return self.q(column)

    # -- comments, views, code ------------------------------------------------------

    def comments(self, table: TableDef, item: Item) -> None:
        commented = [c for c in table.columns if c.comment]
        if self.target == "mysql" or not (table.comment or commented):
            return
        if self.target == "sqlite":
            item.warn("table and column comments dropped (SQLite has no comments)")
            return
        name = self.qualify(table.schema, table.name)
        if table.comment:
            sql = f"COMMENT ON TABLE {name} IS {sql_string(table.comment, 'postgresql')}"
            self.emit(Phase.COMMENTS, sql, table)
        for col in commented:
            text = sql_string(col.comment, "postgresql")
            sql = f"COMMENT ON COLUMN {name}.{self.q(col.name)} IS {text}"
            self.emit(Phase.COMMENTS, sql, table)

    def view(self, view: ViewDef) -> None:
        item = self.item("views", view.schema, view.name)
        item.source_sql = view.definition

        def rename(node: exp.Table) -> None:
            self.rename_table(node, view.schema)

        result = translate(view.definition, self.source, self.target, rename)
        if result.error:
            item.manual(
                f"the view could not be translated: {result.error}",
                "Rewrite the view's query in the target dialect.",
            )
            return
        for warning in result.warnings:
            item.warn(warning)
        sql = f"CREATE VIEW {self.view_name(view)} AS {result.sql}"
        item.sql.append(sql)
        self.emit(Phase.VIEWS, sql)
        if view.comment and self.target == "postgresql":
            text = sql_string(view.comment, "postgresql")
            self.emit(Phase.COMMENTS, f"COMMENT ON VIEW {self.view_name(view)} IS {text}")
        elif view.comment:
            item.warn(f"view comment dropped ({self.target} has no view comments)")

    def view_name(self, view: ViewDef) -> str:
        if self.target == "sqlite":
            return self.q(view.name)
        return self.qualify(view.schema, view.name)

    def rename_table(self, node: exp.Table, default_schema: str) -> None:
        """Points a table reference of a view at the converted table."""
        schema = node.db or default_schema
        if node.args.get("catalog") is not None:
            node.set("catalog", None)
        if schema not in self.catalog.schemas and node.db:
            return  # a table outside the conversion: left as written
        target_schema = self.schema_of(schema)
        if self.target == "sqlite" or not target_schema:
            node.set("db", None)
        else:
            node.set("db", exp.to_identifier(target_schema))

    def code(self, code: CodeObject) -> None:
        item = self.item(code.kind, code.schema, code.name)
        item.source_sql = code.definition
        where = f" on table {code.table}" if code.table else ""
        item.manual(f"{code.kind[:-1]}{where} needs manual conversion", REMEDIATION[code.kind])
        commented = "\n".join(f"-- {line}" for line in code.definition.splitlines())
        header = f"-- MANUAL: {code.kind[:-1]} {code.schema}.{code.name}{where}"
        self.emit(Phase.MANUAL, f"{header}\n{commented}")


def generate(catalog: SourceCatalog, target: str, target_schema: str | None = None) -> Conversion:
    """Target DDL and report items for ``catalog`` on ``target``."""
    return Generator(catalog, target, target_schema).run()


def counts(items: list[Item]) -> dict[str, dict[str, int]]:
    """Per object kind: how many items have each status."""
    from opendms.convert.objects import KINDS

    out = {kind: {s.value: 0 for s in Status} for kind in KINDS}
    for item in items:
        out.setdefault(item.kind, {s.value: 0 for s in Status})[item.status.value] += 1
    return out
