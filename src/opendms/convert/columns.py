"""Column definitions for the target: types, identity, defaults, generated columns."""

from __future__ import annotations

from opendms.convert.base import GeneratorBase, Phase
from opendms.convert.sqlx import clock_precision, translate, translate_default
from opendms.endpoints.ddldialect import Comments
from opendms.endpoints.schemaobjects import ColumnDef, Item, TableDef
from opendms.model import Kind

INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)


class ColumnRules(GeneratorBase):
    """How one source column is written in the target's CREATE TABLE."""

    generated_columns = True  # False: computed columns become plain ones (a task's load)
    enum_types: dict[tuple[str, str], str]
    domain_types: dict[str, str]
    keys: dict[tuple[str, str], set[str]]

    def key_columns(self, table: TableDef) -> set[str]:
        """The columns of the table's keys and those other tables reference."""
        found = self.keys.get((table.schema, table.name))
        if found is None:
            found = self.keys[(table.schema, table.name)] = self.find_keys(table)
        return found

    def find_keys(self, table: TableDef) -> set[str]:
        """See :meth:`key_columns` (which keeps the answer per table)."""
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

    def rowid_key(self, table: TableDef) -> bool:
        """A single integer identity key that becomes the row id (SQLite's INTEGER PRIMARY
        KEY AUTOINCREMENT) on targets that have one."""
        if not self.target.rowid_type or len(table.primary_key) != 1:
            return False
        col = table.column(table.primary_key[0])
        return col.identity and col.type.kind in INTEGERS

    def column_sql(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        type_sql = self.type_sql(table, col, item)
        parts = [self.q(col.name), type_sql]
        generated = self.generated(col, item)
        if generated:
            parts.append(generated)
        elif col.identity:
            parts.append(self.identity(table, col, item))
        if not col.nullable and (self.target.generated_not_null or not generated):
            parts.append("NOT NULL")
        if not generated:
            parts.append(self.default(col, type_sql, item))
            parts.append(self.on_update(col, item))
        if col.comment and self.target.comments is Comments.INLINE:
            parts.append(f"COMMENT {self.target.string(col.comment)}")
        return " ".join(p for p in parts if p)

    def identity(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        target = self.target
        if target.rowid_type and not self.rowid_key(table):
            item.warn(f"column {col.name}: auto-increment needs a single INTEGER primary key")
            return ""
        if col.name in self.identity_keys(table):
            item.warn(f"column {col.name}: an index on it was added ({target.identity_key})")
        return target.identity

    def identity_keys(self, table: TableDef) -> list[str]:
        """Identity columns that lead no key, on targets where they must: each gets an
        index of its own."""
        if not self.target.identity_key:
            return []
        firsts = {k[0] for k in [table.primary_key] + [u.columns for u in table.uniques] if k}
        return [c.name for c in table.columns if c.identity and c.name not in firsts]

    def generated(self, col: ColumnDef, item: Item) -> str:
        """``GENERATED ALWAYS AS (...) STORED``, or "" for a plain column (with a warning)."""
        if not col.generated:
            return ""
        if not self.generated_columns:
            item.warn(
                f"column {col.name}: generated ({col.generated}) in the source; a plain "
                "column here, holding the source's values"
            )
            return ""
        result = translate(col.generated, self.source, self.target)
        if result.error or result.unknown:
            why = result.error or f"{', '.join(result.unknown)}() has no known translation"
            item.warn(
                f"column {col.name}: generated as {col.generated} in the source, but {why}; "
                "created as a plain column: add the expression by hand"
            )
            return ""
        for warning in result.warnings:
            item.warn(f"column {col.name}: {warning}")
        return f"GENERATED ALWAYS AS ({result.sql}) STORED"

    def default(self, col: ColumnDef, type_sql: str, item: Item) -> str:
        if col.identity or col.default is None:
            return ""
        result = translate_default(col.default, self.target, col.type)
        if result.warning:
            item.warn(f"column {col.name}: {result.warning}")
        if not result.sql:
            return ""
        expression_only = type_sql in self.target.expression_default_types
        if expression_only and not result.sql.startswith("("):
            return f"DEFAULT ({result.sql})"
        return f"DEFAULT {result.sql}"

    def on_update(self, col: ColumnDef, item: Item) -> str:
        """ON UPDATE CURRENT_TIMESTAMP: kept on targets that have it, reported elsewhere."""
        if not col.on_update:
            return ""
        timestamp = col.type.kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
        if self.target.on_update_timestamp and timestamp:
            return f"ON UPDATE CURRENT_TIMESTAMP({clock_precision(col.type)})"
        item.warn(
            f"column {col.name}: {col.on_update.upper()} dropped ({self.target.name} needs a "
            "trigger to set the column on every update)"
        )
        return ""

    # -- types -----------------------------------------------------------------

    def type_sql(self, table: TableDef, col: ColumnDef, item: Item) -> str:
        sql = self.named_type(table, col) or self.target.column_type(
            col.type, col.name in self.key_columns(table), self.source is self.target
        )
        warning = self.type_warning(table, col, sql)
        if warning:
            item.warn(f"column {col.name}: {warning}")
        return sql

    def named_type(self, table: TableDef, col: ColumnDef) -> str:
        """The row id's type, or the domain or enum type created for the column ("": the
        type of its canonical type)."""
        if col.identity and self.rowid_key(table):
            return self.target.rowid_type
        if col.domain in self.domain_types:
            return self.domain_types[col.domain]
        ctype = col.type
        element = ctype.element if ctype.kind is Kind.ARRAY else ctype
        if not self.target.enum_types or element is None or element.kind is not Kind.ENUM:
            return ""
        suffix = "[]" if ctype.kind is Kind.ARRAY else ""
        if self.source.enum_types and element.type_name:
            schema, _, name = element.type_name.rpartition(".")
            schema, name = schema.strip('"') or table.schema, name.strip('"')
            return self.enum_types.get((schema, name), self.qualify(schema, name)) + suffix
        enum_name = f"{table.name}_{col.name}"
        item = self.item("enums", table.schema, enum_name)
        item.messages.append(f"created from the ENUM column {table.name}.{col.name}")
        return self.create_enum(item, table.schema, enum_name, element.labels) + suffix

    def create_enum(self, item: Item, schema: str, name: str, labels: tuple[str, ...]) -> str:
        qualified = self.qualify(schema, name)
        values = ", ".join(self.target.string(v) for v in labels)
        self.emit(Phase.TYPES, f"CREATE TYPE {qualified} AS ENUM ({values})", None, item, qualified)
        self.enum_types[(schema, name)] = qualified
        return qualified

    def type_warning(self, table: TableDef, col: ColumnDef, sql: str) -> str:
        target = self.target
        if self.source is target:
            return ""
        ctype, native = col.type, col.native.lower()
        if col.domain and not target.domains:
            return f"domain {col.domain} became its base type {sql} with the domain's checks"
        if ctype.type_name and ctype.kind in (Kind.STRING, Kind.BINARY):
            return f"type {col.native} has no {target.name} equivalent; mapped to {sql}"
        if "unsigned" in native or native.startswith("set("):
            return f"type {col.native} widened to {sql}"
        kind = ctype.kind
        if (kind is Kind.ARRAY and not target.arrays) or (
            kind is Kind.INTERVAL and not target.intervals
        ):
            return f"type {col.native} stored as {sql}"
        if target.type_note is None:
            return ""
        return target.type_note(col, sql, col.name in self.key_columns(table))

    def enum_checks(self, table: TableDef) -> list[str]:
        """Targets without enum columns keep the labels as a CHECK constraint."""
        if not self.target.enum_checks:
            return []
        out = []
        for col in table.columns:
            if col.type.kind is Kind.ENUM and col.type.labels:
                labels = ", ".join(self.target.string(v) for v in col.type.labels)
                out.append(f"CHECK ({self.q(col.name)} IN ({labels}))")
        return out
