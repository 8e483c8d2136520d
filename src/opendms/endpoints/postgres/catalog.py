"""Reading table definitions from the PostgreSQL catalog."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.postgres.types import from_pg
from opendms.model import Column, Index, Table, TableRef

LIST_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND c.relname NOT IN ('opendms_ddl_audit', 'opendms_ddl_tables', 'opendms_ddl_rules')
ORDER BY 1, 2
"""

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid),
       coalesce(et.typtype, t.typtype),
       coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = coalesce(et.oid, t.oid)), '{}')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

INDEXES = """
SELECT ic.relname, i.indisprimary, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       i.indnkeyatts, i.indexprs IS NULL AND i.indpred IS NULL
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %s::regclass ORDER BY ic.relname
"""

# Partitions (children of a partitioned table only; plain inheritance children are
# tables of their own), each as a quoted, schema-qualified name like regclass() makes.
STATS = """
SELECT c.reltuples::bigint, c.relkind,
       array(SELECT '"' || replace(cn.nspname, '"', '""') || '"."'
                    || replace(ch.relname, '"', '""') || '"'
             FROM pg_inherits h JOIN pg_class ch ON ch.oid = h.inhrelid
             JOIN pg_namespace cn ON cn.oid = ch.relnamespace
             WHERE h.inhparent = c.oid AND c.relkind = 'p' ORDER BY ch.relname),
       coalesce((SELECT t.spcname FROM pg_tablespace t WHERE t.oid = c.reltablespace),
                'pg_default')
FROM pg_class c WHERE c.oid = %s::regclass
"""


def regclass(ref: TableRef) -> str:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{q(ref.schema)}.{q(ref.name)}"


LIST_VIEWS = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


def list_tables(conn: Any) -> list[TableRef]:
    return [TableRef(r[0], r[1]) for r in conn.execute(LIST_TABLES).fetchall()]


def list_views(conn: Any) -> list[TableRef]:
    """Views and materialized views (loaded as tables when a rule selects views)."""
    return [TableRef(r[0], r[1]) for r in conn.execute(LIST_VIEWS).fetchall()]


def describe(conn: Any, ref: TableRef) -> Table:
    rel = regclass(ref)
    cols = tuple(
        Column(r[0], from_pg(r[1], r[4], tuple(r[5])), nullable=not r[2], default=r[3])
        for r in conn.execute(COLUMNS, (rel,)).fetchall()
    )
    pk: tuple[str, ...] = ()
    indexes = []
    for name, primary, unique, columns, nkeys, plain in conn.execute(INDEXES, (rel,)).fetchall():
        if primary:
            pk = tuple(columns[:nkeys])
        elif plain:
            indexes.append(Index(name, tuple(columns[:nkeys]), unique))
    rows, relkind, parts, space = conn.execute(STATS, (rel,)).fetchone()
    estimate = _estimate(conn, rel, rows, relkind, parts)
    view = relkind in ("v", "m")
    return Table(
        ref.schema,
        ref.name,
        cols,
        pk,
        tuple(indexes),
        estimate,
        tuple(parts),
        view,
        tablespace=space,
    )


def _estimate(conn: Any, rel: str, rows: int, relkind: str, parts: list[str]) -> int:
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
