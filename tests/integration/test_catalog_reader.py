"""One catalog reader per engine: the migration's description of a table (``describe``)
and conversion's (``source_catalog``) come from the same rows, so they agree on the
columns, their types and nullability, the primary key and the indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opendms.endpoints import engine_for, open_source
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.schemaobjects import TableDef
from opendms.errors import OpenDMSError
from opendms.model import Table, TableRef
from tests.integration import everything
from tests.integration.sample_schemas import PAGILA, SAKILA
from tests.support.endpoints import source_url
from tests.support.sql import execute

SQLITE = """
CREATE TABLE kinds (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(40) UNIQUE);
CREATE TABLE things (id INTEGER PRIMARY KEY, kind_id INTEGER REFERENCES kinds(id),
                     label TEXT NOT NULL DEFAULT 'x', price DECIMAL(8,2), untyped);
CREATE INDEX things_kind ON things (kind_id);
CREATE UNIQUE INDEX things_label ON things (label, price);
CREATE TABLE pairs (a TEXT NOT NULL, b INT, PRIMARY KEY (b, a)) WITHOUT ROWID;
"""


def _both(url: str) -> list[tuple[Table, TableDef]]:
    """Each table as the migration and as conversion describe it."""
    parsed = EndpointURL.parse(url)
    engine = engine_for(parsed)
    converted = engine.source_catalog(parsed, ())
    assert converted is not None
    by_name = {(t.schema, t.name): t for t in converted.tables}
    source = engine.open_source(parsed, {})
    try:
        return [
            (source.describe(ref), by_name[(ref.schema, ref.name)]) for ref in source.list_tables()
        ]
    finally:
        source.close()


def _agree(table: Table, definition: TableDef) -> None:
    assert [c.name for c in table.columns] == [c.name for c in definition.columns]
    assert table.primary_key == definition.primary_key
    for col, defn in zip(table.columns, definition.columns, strict=True):
        if defn.domain:  # migrated by the domain's name, converted as its base type
            continue
        assert (col.type, col.nullable) == (defn.type, defn.nullable), (table.qualified, col.name)
    keyed = {i.name: i.columns for i in [*definition.uniques, *definition.indexes]}
    for index in table.indexes:
        assert keyed.get(index.name) == index.columns, (table.qualified, index.name)


def _check(url: str, tables: int) -> None:
    pairs = _both(url)
    assert len(pairs) == tables
    for table, definition in pairs:
        _agree(table, definition)


def test_postgres_describe_and_conversion_agree(pg_db: str) -> None:
    execute(pg_db, PAGILA)
    everything.create_pg(pg_db)
    _check(pg_db, 11)


def test_mysql_describe_and_conversion_agree(mysql_db: str) -> None:
    execute(mysql_db, SAKILA)
    everything.create_mysql(mysql_db)
    _check(mysql_db, 6)


def test_sqlite_describe_and_conversion_agree(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE)
    conn.close()
    everything.create_sqlite(str(path))
    _check(f"sqlite:///{path}", 4)


@pytest.mark.parametrize("kind", ["pg", "mysql", "sqlite"])
def test_describing_a_missing_table_is_a_clear_error(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = source_url(kind, request, tmp_path)
    if kind == "sqlite":
        sqlite3.connect(tmp_path / "source.db").close()
    schema = {"pg": "public", "sqlite": "main"}.get(kind) or str(EndpointURL.parse(url).database)
    source = open_source(url)
    try:
        with pytest.raises(OpenDMSError, match="no_such_table"):
            source.describe(TableRef(schema, "no_such_table"))
    finally:
        source.close()
