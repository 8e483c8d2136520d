"""Target DDL from a :class:`SourceCatalog`, with one report item per object.

Statements carry a phase so the script runs in a safe order: schemas, types,
sequences, tables, constraints, foreign keys, indexes, views, comments.
"""

from __future__ import annotations

import re

from opendms.convert.advice import search_advice, sequence_advice
from opendms.convert.base import Conversion, Naming, Phase, Statement
from opendms.convert.catalog import dialect_for
from opendms.convert.columns import ColumnRules
from opendms.convert.sqlx import Translation, translate
from opendms.convert.views import ViewRules
from opendms.endpoints.ddldialect import Comments, DdlDialect
from opendms.endpoints.schemaobjects import (
    Check,
    DomainDef,
    EnumDef,
    ForeignKey,
    IndexDef,
    Item,
    SequenceDef,
    SourceCatalog,
    Status,
    TableDef,
)

__all__ = ["Conversion", "Naming", "Phase", "Statement", "counts", "generate"]

_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$", re.S)


class Generator(ColumnRules, ViewRules):
    """Converts one catalog to one target engine."""

    def __init__(
        self,
        catalog: SourceCatalog,
        target: DdlDialect,
        naming: Naming | None = None,
        generated_columns: bool = True,
    ) -> None:
        super().__init__(catalog, target, naming)
        self.generated_columns = generated_columns
        self.enum_types = {}  # (schema, type) -> target name (targets with enum types)
        self.domain_types = {}  # "schema.name" -> target name (targets with domains)
        self.keys = {}  # (schema, table) -> its key columns

    def run(self) -> Conversion:
        self.schemas()
        for enum_def in self.catalog.enums:
            self.enum(enum_def)
        for domain in self.catalog.domains:
            self.domain(domain)
        for seq in self.catalog.sequences:
            self.sequence(seq)
        for table in self.catalog.tables:
            self.table(table)
        self.views()
        for code in self.catalog.code:
            self.code(code)
        return self.out

    def schemas(self) -> None:
        names = {self.schema_of(s) for s in self.catalog.schemas}
        names |= {schema for schema, _ in self.naming.tables.values()}
        word = self.target.schema_keyword
        for name in sorted(names - {""}):
            if word:
                self.emit(Phase.SCHEMAS, f"CREATE {word} IF NOT EXISTS {self.q(name)}")

    # -- enums, domains and sequences ---------------------------------------------

    def enum(self, enum_def: EnumDef) -> None:
        item = self.item("enums", enum_def.schema, enum_def.name)
        if self.target.enum_types:
            self.create_enum(item, enum_def.schema, enum_def.name, enum_def.labels)
        else:
            item.messages.append(self.target.enum_note)

    def domain(self, domain: DomainDef) -> None:
        item = self.item("domains", domain.schema, domain.name)
        if not self.target.domains:
            item.messages.append(
                f"columns of this domain use its base type ({domain.base}) with its "
                "NOT NULL, default and checks"
            )
            return
        qualified = self.qualify(domain.schema, domain.name)
        parts = [f"CREATE DOMAIN {qualified} AS {domain.base}"]
        if domain.not_null:
            parts.append("NOT NULL")
        if domain.default is not None:
            parts.append(f"DEFAULT {domain.default}")
        parts += [f"CONSTRAINT {self.q(c.name)} CHECK {c.expression}" for c in domain.checks]
        self.emit(Phase.TYPES, " ".join(parts), None, item, qualified)
        self.domain_types[f"{domain.schema}.{domain.name}"] = qualified

    def sequence(self, seq: SequenceDef) -> None:
        item = self.item("sequences", seq.schema, seq.name)
        users = list(dict.fromkeys(([seq.owned_by] if seq.owned_by else []) + list(seq.used_by)))
        if users:
            how = self.target.identity_name
            item.messages.append(f"converted as {how} on " + ", ".join(users))
            if len(users) > 1:
                item.warn(
                    f"shared by {len(users)} columns: each gets its own counter on the "
                    "target, so their values may collide where the source kept them apart"
                )
            return
        if not self.target.sequences:
            item.manual(f"{self.target.name} has no standalone sequences", sequence_advice())
            return
        sql = (
            f"CREATE SEQUENCE {self.qualify(seq.schema, seq.name)} "
            f"START WITH {seq.start} INCREMENT BY {seq.increment}"
        )
        self.emit(Phase.SEQUENCES, sql, None, item)

    # -- tables ----------------------------------------------------------------

    def table(self, table: TableDef) -> None:
        item = self.item("tables", table.schema, table.name)
        lines = [self.column_sql(table, col, item) for col in table.columns]
        if table.primary_key and not self.rowid_key(table):
            lines.append("PRIMARY KEY (" + ", ".join(map(self.q, table.primary_key)) + ")")
        for col in self.identity_keys(table):
            lines.append(f"KEY {self.q(self.object_name(table, col + '_key'))} ({self.q(col)})")
        if table.primary_key:
            self.item("constraints", table.schema, f"{table.name}.PRIMARY KEY")
        inline: list[str] = []
        for unique in table.uniques:
            inline += self.unique(table, unique)
        for check in table.checks:
            inline += self.check(table, check)
        inline += self.enum_checks(table)
        for fk in table.foreign_keys:
            inline += self.foreign_key(table, fk)
        self.emit(Phase.TABLES, self.create_table(table, lines + inline, item), table, item)
        self.partitions(table, item)
        for index in table.indexes:
            self.index(table, index)
        self.comments(table, item)

    def create_table(self, table: TableDef, lines: list[str], item: Item) -> str:
        name = self.table_sql(table.schema, table.name)
        head = f"CREATE TABLE {name} (\n  " + ",\n  ".join(lines) + "\n)"
        if self.keeps_partitions(table):
            head += f" PARTITION BY {table.partition_by}"
        elif table.partition_by:
            parts = ", ".join(p.name for p in table.partitions)
            item.warn(
                f"partitioned by {table.partition_by} in the source (partitions: {parts}); "
                "created as one plain table holding every partition's rows"
            )
        options = self.target.table_options
        if table.comment and self.target.comments is Comments.INLINE:
            options += f" COMMENT={self.target.string(table.comment)}"
        return head + options

    def keeps_partitions(self, table: TableDef) -> bool:
        """A target of the source's engine with declarative partitioning keeps it."""
        same = self.source is self.target
        return bool(table.partition_by) and same and self.target.partitions

    def partitions(self, table: TableDef, item: Item) -> None:
        if not self.keeps_partitions(table):
            return
        parent = self.table_sql(table.schema, table.name)
        for part in table.partitions:
            name = self.qualify(table.schema, part.name)
            self.emit(
                Phase.TABLES, f"CREATE TABLE {name} PARTITION OF {parent} {part.bound}", table, item
            )
            if part.partitioned:
                item.warn(f"partition {part.name} is itself partitioned: created as one table")

    # -- constraints -------------------------------------------------------------

    def constraint(self, table: TableDef, name: str, body: str, phase: Phase) -> list[str]:
        """Inline (returned) on targets that write constraints inside CREATE TABLE, else
        an ALTER TABLE statement."""
        target_name = self.object_name(table, name)
        item = self.item("constraints", table.schema, f"{table.name}.{name}")
        if self.target.inline_constraints:
            item.sql.append(f"CONSTRAINT {self.q(target_name)} {body}")
            return item.sql[:]
        sql = (
            f"ALTER TABLE {self.table_sql(table.schema, table.name)} "
            f"ADD CONSTRAINT {self.q(target_name)} {body}"
        )
        self.emit(phase, sql, table, item)
        return []

    def unique(self, table: TableDef, unique: IndexDef) -> list[str]:
        body = "UNIQUE (" + ", ".join(map(self.q, unique.columns)) + ")"
        return self.constraint(table, unique.name, body, Phase.CONSTRAINTS)

    def check(self, table: TableDef, check: Check) -> list[str]:
        if check.domain and check.domain in self.domain_types:
            return []  # the column has the domain, which carries the check
        result = translate(check.expression, self.source, self.target)
        why = result.error or self.check_refused(result)
        if why:
            item = self.item("constraints", table.schema, f"{table.name}.{check.name}")
            item.source_sql = check.expression
            item.manual(
                f"check constraint could not be translated: {why}",
                "Rewrite the CHECK expression in the target dialect and add it by hand.",
            )
            return []
        body = result.sql if result.sql.startswith("(") else f"({result.sql})"
        out = self.constraint(table, check.name, f"CHECK {body}", Phase.CONSTRAINTS)
        for warning in result.warnings:
            self.out.items[-1].warn(warning)
        if check.domain:
            self.out.items[-1].messages.append(f"the check of domain {check.domain}")
        return out

    def check_refused(self, result: Translation) -> str:
        """Why the target cannot take a translated CHECK ("": it can)."""
        target = self.target
        if result.unknown and self.source is not target:
            return f"{', '.join(result.unknown)}() has no known {target.name} translation"
        if result.volatile and not target.volatile_checks:
            return f"{target.title} refuses the current date/time, random values or UUIDs in CHECK"
        if result.regexp and not target.regexp:
            return f"{target.title} has no REGEXP function unless the application registers one"
        return ""

    def foreign_key(self, table: TableDef, fk: ForeignKey) -> list[str]:
        on_delete, on_update = fk.on_delete, fk.on_update
        notes: list[str] = []
        if self.target.fk_actions is not None:
            on_delete, on_update, notes = self.target.fk_actions(table, fk)
        if fk.ref_schema not in self.catalog.schemas:
            notes.append(f"references {fk.ref_schema}.{fk.ref_table} outside the converted schemas")
        ref = self.table_sql(fk.ref_schema, fk.ref_table)
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
        if index.method and not self.same_method(table, index, item):
            return
        if index.expression and self.source.index_definitions:
            self.defined_index(table, index, item)
            return
        if self.unindexable(table, index, item):
            return
        if index.expression:
            item.warn(f"{index.expression} became an index on the whole column")
        parts = [self.index_part(table, c, index, item) for c in index.columns]
        self.create_index(table, index, item, f"({', '.join(parts)})")

    def unindexable(self, table: TableDef, index: IndexDef, item: Item) -> bool:
        """Targets that index no JSON column (only values extracted into generated columns)."""
        json = [c for c in index.columns if table.column(c).type.kind.value == "json"]
        if self.target.json_index or not json:
            return False
        item.manual(
            f"{self.target.title} cannot index the JSON column {', '.join(json)}",
            "Index a generated column that extracts the searched value, or drop the index.",
        )
        return True

    def create_index(self, table: TableDef, index: IndexDef, item: Item, body: str) -> None:
        name = self.object_name(table, index.name)
        kind = "UNIQUE " if index.unique else ""
        if index.method in self.target.index_kinds:
            kind = f"{index.method.upper()} "
        elif index.method and self.target.index_using and not body.startswith("USING"):
            body = f"USING {index.method} {body}"
        on = self.table_sql(table.schema, table.name)
        self.emit(Phase.INDEXES, f"CREATE {kind}INDEX {self.q(name)} ON {on} {body}", table, item)

    def same_method(self, table: TableDef, index: IndexDef, item: Item) -> bool:
        """A GiST/GIN/FULLTEXT/... index: kept on its own engine, manual elsewhere."""
        if self.source is self.target:
            return True
        item.source_sql = index.expression or f"{index.method} index on {', '.join(index.columns)}"
        item.manual(
            f"a {index.method.upper()} index has no {self.target.name} equivalent",
            search_advice(),
        )
        return False

    def defined_index(self, table: TableDef, index: IndexDef, item: Item) -> None:
        """An expression index the source gave as its CREATE INDEX statement: kept on a
        target of the source's engine, manual elsewhere."""
        found = _INDEXDEF.match(index.expression)
        if self.source is self.target and found:
            kept = IndexDef(index.name, index.columns, bool(found.group(1)))
            self.create_index(table, kept, item, found.group(2))
            return
        item.source_sql = index.expression
        item.manual(
            "expression, partial or INCLUDE index",
            "Recreate the index by hand with the target's expression syntax.",
        )

    def index_part(self, table: TableDef, column: str, index: IndexDef, item: Item) -> str:
        ctype = table.column(column).type
        chars, over = self.target.index_prefix, self.target.prefix_over
        long_text = ctype.kind.value in ("string", "binary") and (ctype.length or 10**9) > over
        prefix = bool(chars) and long_text and not index.method
        if prefix and column not in self.key_columns(table):
            item.warn(f"column {column} is indexed on its first {chars} characters")
            return f"{self.q(column)}({chars})"
        return self.q(column)

    # -- comments ------------------------------------------------------------------

    def comments(self, table: TableDef, item: Item) -> None:
        commented = [c for c in table.columns if c.comment]
        style = self.target.comments
        if style is Comments.INLINE or not (table.comment or commented):
            return
        if style is Comments.NONE:
            item.warn(f"table and column comments dropped ({self.target.title} has no comments)")
            return
        name = self.table_sql(table.schema, table.name)
        if table.comment:
            sql = f"COMMENT ON TABLE {name} IS {self.target.string(table.comment)}"
            self.emit(Phase.COMMENTS, sql, table)
        for col in commented:
            text = self.target.string(col.comment)
            sql = f"COMMENT ON COLUMN {name}.{self.q(col.name)} IS {text}"
            self.emit(Phase.COMMENTS, sql, table)


def generate(
    catalog: SourceCatalog,
    target: str,
    naming: Naming | None = None,
    generated_columns: bool = True,
) -> Conversion:
    """Target DDL and report items for ``catalog`` on ``target`` (a dialect name or a
    URL scheme of its engine)."""
    return Generator(catalog, dialect_for(target), naming, generated_columns).run()


def counts(items: list[Item]) -> dict[str, dict[str, int]]:
    """Per object kind: how many items have each status."""
    from opendms.endpoints.schemaobjects import KINDS

    out = {kind: {s.value: 0 for s in Status} for kind in KINDS}
    for item in items:
        out.setdefault(item.kind, {s.value: 0 for s in Status})[item.status.value] += 1
    return out
