"""The one reader of the PostgreSQL catalog for tables: their columns, keys, indexes and
partitions, read by one query each and served both as the migration's
:class:`~opendms.model.Table` (:func:`describe`) and, through ``schemacatalog``, as the
conversion's schema objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import psycopg

from opendms.endpoints.postgres.types import from_pg
from opendms.errors import TableError
from opendms.model import Column, ColumnType, Index, Table, TableRef

USER_SCHEMAS = """
SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'
AND nspname <> 'information_schema' ORDER BY 1
"""

# Tables DDL capture keeps in the source database: never migrated.
INTERNAL = ("opendms_ddl_audit", "opendms_ddl_tables", "opendms_ddl_rules")

TABLES = """
SELECT c.oid, n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
ORDER BY 2, 3
"""


def _labels(oid: str) -> str:
    """The enum labels of type ``oid`` (an SQL expression), in order; none for others."""
    return (
        "coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e "
        f"WHERE e.enumtypid = {oid}), '{{}}')"
    )


# A column by its declared type (a domain by its own name: what the migration carries)
# and by the type under its domains (through domains over domains: what conversion
# converts); the outermost domain's oid lets conversion add its NOT NULL, default and
# checks.
COLUMNS = f"""
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(det.typtype, dt.typtype), {_labels("coalesce(det.oid, dt.oid)")},
       format_type(coalesce(b.base, a.atttypid), coalesce(b.typmod, a.atttypmod)),
       coalesce(et.typtype, t.typtype), {_labels("coalesce(et.oid, t.oid)")},
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '',
       a.attgenerated <> '', coalesce(col_description(a.attrelid, a.attnum), ''),
       CASE WHEN dt.typtype = 'd' THEN dt.oid END
FROM pg_attribute a
JOIN pg_type dt ON dt.oid = a.atttypid
LEFT JOIN pg_type det ON det.oid = dt.typelem AND dt.typcategory = 'A'
LEFT JOIN LATERAL (
    WITH RECURSIVE chain(base, typmod, depth) AS (
        SELECT dt.typbasetype, dt.typtypmod, 1 WHERE dt.typtype = 'd'
        UNION ALL
        SELECT p.typbasetype, CASE WHEN c.typmod >= 0 THEN c.typmod ELSE p.typtypmod END,
               c.depth + 1
        FROM chain c JOIN pg_type p ON p.oid = c.base WHERE p.typtype = 'd')
    SELECT base, typmod FROM chain ORDER BY depth DESC LIMIT 1) b ON true
JOIN pg_type t ON t.oid = coalesce(b.base, a.atttypid)
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# ``constraints``: the kinds of the table's constraints an index backs (a primary key,
# unique or exclusion constraint, or a foreign key of the table onto its own index).
INDEXES = """
SELECT ic.relname, i.indisprimary, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
       i.indnkeyatts, i.indexprs IS NULL AND i.indpred IS NULL, pg_get_indexdef(i.indexrelid),
       am.amname,
       array(SELECT c.contype FROM pg_constraint c WHERE c.conindid = i.indexrelid
             AND c.conrelid = i.indrelid ORDER BY c.conname)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = %s ORDER BY ic.relname
"""

# Children of a table: partitions (with their bounds) or plain inheritance children.
CHILDREN = """
SELECT cn.nspname, ch.relname, pg_get_expr(ch.relpartbound, ch.oid), ch.relkind = 'p'
FROM pg_inherits h JOIN pg_class ch ON ch.oid = h.inhrelid
JOIN pg_namespace cn ON cn.oid = ch.relnamespace
WHERE h.inhparent = %s ORDER BY ch.relname
"""

RELATION = """
SELECT c.oid, c.reltuples::bigint, c.relkind,
       coalesce((SELECT t.spcname FROM pg_tablespace t WHERE t.oid = c.reltablespace),
                'pg_default')
FROM pg_class c WHERE c.oid = %s::regclass
"""

LIST_VIEWS = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class TableRow:
    """A table (or partitioned table) of the catalog."""

    oid: int
    schema: str
    name: str
    comment: str
    partition_by: str  # pg_get_partkeydef(): "RANGE (k)"; empty for a plain table


@dataclass(frozen=True)
class PgType:
    """A column's type as format_type() writes it, with its (array element's) typtype
    and enum labels."""

    formatted: str
    typtype: str
    labels: tuple[str, ...]

    def canonical(self) -> ColumnType:
        return from_pg(self.formatted, self.typtype, self.labels)


@dataclass(frozen=True)
class ColumnRow:
    """A column as pg_attribute and pg_type describe it."""

    name: str
    declared: PgType  # the declared type (a domain: its own name)
    base: PgType  # the type under any domains
    not_null: bool
    default: str | None  # pg_get_expr() of the default or generation expression
    identity: bool
    generated: bool
    comment: str
    domain: int | None  # the oid of the declared domain

    def column(self) -> Column:
        """The migration's column: its declared type (a domain travels by name)."""
        ctype = self.declared.canonical()
        return Column(self.name, ctype, nullable=not self.not_null, default=self.default)


@dataclass(frozen=True)
class IndexRow:
    """An index of a table."""

    name: str
    primary: bool
    unique: bool
    columns: tuple[str, ...]  # key columns, then INCLUDE columns (expressions left out)
    key_count: int
    plain: bool  # no expression, no predicate
    definition: str  # pg_get_indexdef()
    method: str  # the access method: btree, gist, ...
    constraints: str  # pg_constraint.contype of each constraint backed by the index

    @property
    def keys(self) -> tuple[str, ...]:
        return self.columns[: self.key_count]


@dataclass(frozen=True)
class ChildRow:
    """A partition (or inheritance child) of a table."""

    schema: str
    name: str
    bound: str | None  # "FOR VALUES ..." of a partition; None for an inheritance child
    partitioned: bool


def user_schemas(conn: Any) -> list[str]:
    """Every user schema of the database."""
    return [r[0] for r in conn.execute(USER_SCHEMAS).fetchall()]


def tables(conn: Any, schemas: list[str]) -> list[TableRow]:
    """The tables of ``schemas`` (partitions are their parents' own)."""
    return [TableRow(*r) for r in conn.execute(TABLES, (schemas,)).fetchall()]


def columns(conn: Any, oid: int) -> list[ColumnRow]:
    """The table's columns, in order."""
    return [_column_row(r) for r in conn.execute(COLUMNS, (oid,)).fetchall()]


def _column_row(r: Any) -> ColumnRow:
    declared = PgType(r[1], r[2], tuple(r[3]))
    base = PgType(r[4], r[5], tuple(r[6]))
    return ColumnRow(r[0], declared, base, *r[7:])


def indexes(conn: Any, oid: int) -> list[IndexRow]:
    """The table's indexes, by name."""
    return [_index_row(r) for r in conn.execute(INDEXES, (oid,)).fetchall()]


def _index_row(r: Any) -> IndexRow:
    name, primary, unique, cols, key_count, plain, definition, method, constraints = r
    kinds = "".join(constraints)
    return IndexRow(name, primary, unique, tuple(cols), key_count, plain, definition, method, kinds)


def children(conn: Any, oid: int) -> list[ChildRow]:
    return [ChildRow(*r) for r in conn.execute(CHILDREN, (oid,)).fetchall()]


def regclass(ref: TableRef) -> str:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{q(ref.schema)}.{q(ref.name)}"


def list_tables(conn: Any) -> list[TableRef]:
    found = tables(conn, user_schemas(conn))
    return [TableRef(t.schema, t.name) for t in found if t.name not in INTERNAL]


def list_views(conn: Any) -> list[TableRef]:
    """Views and materialized views (loaded as tables when a rule selects views)."""
    return [TableRef(r[0], r[1]) for r in conn.execute(LIST_VIEWS).fetchall()]


def _relation(conn: Any, ref: TableRef) -> tuple[int, int, str, str]:
    """The table's oid, estimated rows, relkind and tablespace; TableError when missing."""
    try:
        row = conn.execute(RELATION, (regclass(ref),)).fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise TableError(f"{ref.schema}.{ref.name}", "does not exist on the source") from exc
    return cast(tuple[int, int, str, str], tuple(row))


def describe(conn: Any, ref: TableRef) -> Table:
    """The migration's description of a table or view."""
    oid, rows, relkind, space = _relation(conn, ref)
    cols = tuple(c.column() for c in columns(conn, oid))
    found = indexes(conn, oid)
    pk = next((i.keys for i in found if i.primary), ())
    plain = tuple(Index(i.name, i.keys, i.unique) for i in found if i.plain and not i.primary)
    parts: tuple[str, ...] = ()
    if relkind == "p":
        parts = tuple(regclass(TableRef(c.schema, c.name)) for c in children(conn, oid))
    estimate = _estimate(conn, regclass(ref), rows, relkind, parts)
    view = relkind in ("v", "m")
    return Table(ref.schema, ref.name, cols, pk, plain, estimate, parts, view, tablespace=space)


def _estimate(conn: Any, rel: str, rows: int, relkind: str, parts: tuple[str, ...]) -> int:
    if relkind == "p":
        return sum(_estimate_one(conn, p) for p in parts)
    return rows if rows >= 0 else _estimate_one(conn, rel)


def _estimate_one(conn: Any, rel: str) -> int:
    row = conn.execute(
        "SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint END FROM pg_class "
        "WHERE oid = %s::regclass",
        (rel,),
    ).fetchone()
    if row and row[0] is not None:
        return int(row[0])
    return int(conn.execute(f"SELECT count(*) FROM {rel}").fetchone()[0])
