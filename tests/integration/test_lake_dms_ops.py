"""The lake's CDC rows as DMS writes them, from real sources into a local and an S3 lake.

An update is one ``U`` row with the new image; with a source filter a row that moves
into the filter is ``I``, one that moves out ``D``, and one that stays out nothing. A
delete's ``D`` row carries the old row where the source sends it (SQLite capture,
MySQL/MariaDB FULL row image, PostgreSQL REPLICA IDENTITY FULL), as the DMS guide's
``D,101,Smith,Bob,13-Mar-17,Dallas``; only the key where the source sends only the key
(PostgreSQL's default replica identity), and there an update whose old row is unknown
is a ``U`` row (upsert semantics). A database target with the same filter ends with
exactly the filtered rows.

The lake is read with the independent reader (:mod:`tests.oracles.lake`): every file
under the prefix, the exact Op and values of each CDC row in commit order, folded by Op
(strictly: an ``I`` of a held key, a ``U`` or ``D`` of a missing one fails), equal to
the source's filtered rows read with plain SQL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.lake import Lake, read_lake
from tests.support.sql import connect, execute, query

SETUP = [
    "CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(20), category VARCHAR(20), price INT)",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(20), total INT)",
    "INSERT INTO products VALUES (1, 'p1', 'A', 10), (2, 'p2', 'A', 20), "
    "(3, 'p3', 'Discontinued', 30), (4, 'p4', 'A', 40), (5, 'p5', 'Discontinued', 50), "
    "(6, 'p6', 'A', 60)",
    "INSERT INTO orders VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cleo', 30)",
]
CHANGES = [
    "UPDATE products SET price = 11 WHERE id = 1",  # stays inside the filter
    "UPDATE products SET category = 'B' WHERE id = 3",  # moves into it
    "UPDATE products SET category = 'Discontinued' WHERE id = 4",  # moves out
    "UPDATE products SET price = 99 WHERE id = 5",  # stays out
    "DELETE FROM products WHERE id = 6",
    "DELETE FROM products WHERE id = 5",  # was never in the lake
    "INSERT INTO products VALUES (7, 'p7', 'A', 70), (8, 'p8', 'Discontinued', 80)",
    "UPDATE orders SET total = 15 WHERE id = 1",
    "DELETE FROM orders WHERE id = 2",
]
# (Op, id, name, category, price) where the source sends the old row
PRODUCTS_OLD_ROW = [
    ("U", 1, "p1", "A", 11),
    ("I", 3, "p3", "B", 30),
    ("D", 4, "p4", "A", 40),
    ("D", 6, "p6", "A", 60),
    ("I", 7, "p7", "A", 70),
]
ORDERS_OLD_ROW = [("U", 1, "ann", 15), ("D", 2, "bob", 20)]
# PostgreSQL's default replica identity: deletes and old rows carry only the key
PRODUCTS_KEY_ONLY = [
    ("U", 1, "p1", "A", 11),
    ("U", 3, "p3", "B", 30),  # the old row is unknown: an upsert
    ("D", 4, None, None, None),
    ("D", 5, None, None, None),  # might have been in the lake: deleted by key
    ("D", 6, None, None, None),
    ("D", 5, None, None, None),
    ("I", 7, "p7", "A", 70),
]
ORDERS_KEY_ONLY = [("U", 1, "ann", 15), ("D", 2, None, None)]
# the rows the full load writes: the filter leaves out 3 and 5
PRODUCTS_LOADED = [1, 2, 4, 6]
SETTINGS = "DataFormat=parquet;TimestampColumnName=ts"


def _mappings(schema: str) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": schema, "table-name": "%"},
                "rule-action": "include",
            },
            {
                "rule-type": "selection",
                "rule-id": "2",
                "rule-name": "active",
                "object-locator": {"schema-name": schema, "table-name": "products"},
                "rule-action": "include",
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": "category",
                        "filter-conditions": [
                            {"filter-operator": "noteq", "value": "Discontinued"}
                        ],
                    }
                ],
            },
        ]
    }


def _spec(name: str, source: str, target: Any, schema: str) -> Any:
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "table_mappings": _mappings(schema),
        },
        where="test",
    )


def _lake_target(url: str) -> dict[str, str]:
    return {"url": url, "settings": SETTINGS}


def _migrate(source: str, target: Any, schema: str, tmp_path: Path) -> StateStore:
    """Full load, the changes on the source, then CDC until caught up."""
    execute(source, SETUP)
    store = StateStore(tmp_path / "state.db")
    spec = _spec("ops", source, target, schema)
    run_task(spec, store)
    execute(source, CHANGES)
    run_task(spec, store)
    return store


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'src.db'}"


def _read(url: str, schema: str, lenient: tuple[str, ...] = ()) -> Lake:
    keys = {f"{schema}.products": ["id"], f"{schema}.orders": ["id"]}
    return read_lake(url, SETTINGS, keys=keys, lenient=[f"{schema}.{t}" for t in lenient])


def _assert_lake(
    url: str, source: str, schema: str, products: list[Any], orders: list[Any], lenient: bool
) -> None:
    """The exact CDC rows (one file per table: the changes ran before one CDC run),
    the full load's rows, and the tables folded by Op equal to the filtered source."""
    lake = _read(url, schema, ("products",) if lenient else ())
    prod, ords = lake[f"{schema}.products"], lake[f"{schema}.orders"]
    assert [r.row["id"] for r in prod.load_rows] == PRODUCTS_LOADED
    assert prod.op_rows("id", "name", "category", "price") == products
    assert ords.op_rows("id", "customer", "total") == orders
    assert [ops for _, ops in prod.ops()] == [[p[0] for p in products]]
    assert [ops for _, ops in ords.ops()] == [[o[0] for o in orders]]
    assert [tuple(r.values()) for r in prod.rows] == _filtered(source)
    assert [tuple(r.values()) for r in ords.rows] == _orders(source)


def _assert_old_rows(url: str, source: str, schema: str) -> None:
    _assert_lake(url, source, schema, PRODUCTS_OLD_ROW, ORDERS_OLD_ROW, lenient=False)


def test_sqlite_to_local_lake(tmp_path: Path) -> None:
    lake = f"file://{tmp_path}/lake"
    store = _migrate(_sqlite(tmp_path), _lake_target(lake), "main", tmp_path)
    _assert_old_rows(lake, _sqlite(tmp_path), "main")
    counts = store.change_counts("ops")
    assert counts["main.products"][:3] == (1, 3, 1)  # inserts, updates, deletes applied
    assert counts["main.orders"][:3] == (0, 1, 1)


def test_sqlite_to_s3_lake(tmp_path: Path, s3_url: str) -> None:
    _migrate(_sqlite(tmp_path), _lake_target(s3_url), "main", tmp_path)
    _assert_old_rows(s3_url, _sqlite(tmp_path), "main")


def test_mariadb_to_local_lake(mysql_db: str, tmp_path: Path) -> None:
    lake = f"file://{tmp_path}/lake"
    schema = EndpointURL.parse(mysql_db).database
    _migrate(mysql_db, _lake_target(lake), schema, tmp_path)
    _assert_old_rows(lake, mysql_db, schema)


def test_mariadb_to_s3_lake(mysql_db: str, tmp_path: Path, s3_url: str) -> None:
    schema = EndpointURL.parse(mysql_db).database
    _migrate(mysql_db, _lake_target(s3_url), schema, tmp_path)
    _assert_old_rows(s3_url, mysql_db, schema)


def test_postgres_replica_identity_full_to_local_lake(pg_db: str, tmp_path: Path) -> None:
    lake = f"file://{tmp_path}/lake"
    execute(pg_db, SETUP[:2])
    execute(pg_db, [f"ALTER TABLE {t} REPLICA IDENTITY FULL" for t in ("products", "orders")])
    store = StateStore(tmp_path / "state.db")
    spec = _spec("ops", pg_db, _lake_target(lake), "public")
    execute(pg_db, SETUP[2:])
    run_task(spec, store)
    execute(pg_db, CHANGES)
    run_task(spec, store)
    _assert_old_rows(lake, pg_db, "public")


def test_postgres_default_identity_sends_only_the_key(pg_db: str, tmp_path: Path) -> None:
    """Products are folded leniently, as the README tells readers to where the filter
    column is not in the key the source sends (a U of row 3, never in the lake; a D of
    row 5, never in the lake); orders, without a filter, strictly."""
    lake = f"file://{tmp_path}/lake"
    _migrate(pg_db, _lake_target(lake), "public", tmp_path)
    _assert_lake(lake, pg_db, "public", PRODUCTS_KEY_ONLY, ORDERS_KEY_ONLY, lenient=True)


def _filtered(url: str) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        sql = "SELECT id, name, category, price FROM products WHERE category <> 'Discontinued'"
        return sorted(tuple(r) for r in query(conn, f"{sql} ORDER BY id"))
    finally:
        conn.close()


def _orders(url: str) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        return [tuple(r) for r in query(conn, "SELECT id, customer, total FROM orders ORDER BY id")]
    finally:
        conn.close()


def _all_products(url: str) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        rows = query(conn, "SELECT id, name, category, price FROM products ORDER BY id")
        return [tuple(r) for r in rows]
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ["sqlite", "mariadb"])
def test_database_target_ends_with_the_filtered_rows(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Updates decided from the old row (update, insert, delete) keep a database target
    equal to the filtered source."""
    source = _sqlite(tmp_path) if engine == "sqlite" else request.getfixturevalue("mysql_db")
    schema = "main" if engine == "sqlite" else EndpointURL.parse(source).database
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    store = _migrate(source, target, schema, tmp_path)
    assert _all_products(target) == _filtered(source)
    assert [r[0] for r in _all_products(target)] == [1, 2, 3, 7]
    counts = store.change_counts("ops")
    assert counts[f"{schema}.products"][:3] == (1, 3, 1)


def test_sqlite_capture_change_carries_the_old_row(tmp_path: Path) -> None:
    """The SQLite capture's delete carries the whole old row next to its key when asked."""
    from opendms.endpoints import open_change_source
    from opendms.model import TableRef

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(";".join(SETUP[1:4:2]))
    conn.close()
    capture = open_change_source(EndpointURL.parse(f"sqlite:///{db}"), "t")
    try:
        capture.prepare([TableRef("main", "orders")])
        capture.old_rows = {("main", "orders")}
        start, _ = capture.start()
        execute(f"sqlite:///{db}", ["DELETE FROM orders WHERE id = 2"])
        import threading

        stream = capture.stream(start, threading.Event())
        txn = next(t for t in stream if t is not None)
    finally:
        capture.close()
    (change,) = txn.changes
    assert (change.key_columns, change.key) == (("id",), (2,))
    assert change.before() == {"id": 2, "customer": "bob", "total": 20}
