"""``convert_schema: true`` in a task, with schema and table rename rules, end to end:
the converted DDL creates the renamed tables and the rows arrive in them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.integration.test_fullload_guards import SELECT_ALL
from tests.support.sql import connect, execute, query


def _rename(rule_id: str, target: str, schema: str, table: str, value: str) -> dict[str, Any]:
    locator = {"schema-name": schema} | ({"table-name": table} if target == "table" else {})
    return {
        "rule-type": "transformation",
        "rule-id": rule_id,
        "rule-name": f"r{rule_id}",
        "rule-target": target,
        "object-locator": locator,
        "rule-action": "rename",
        "value": value,
    }


def _run(source: str, target: str, tmp_path: Path, *rules: dict[str, Any]) -> None:
    spec = task_from_dict(
        {
            "name": "conv",
            "source": source,
            "target": target,
            "convert_schema": True,
            "table_mappings": {"rules": [SELECT_ALL, *rules]},
        },
        where="test",
    )
    run_task(spec, StateStore(tmp_path / "state.db"))


def test_mysql_to_pg_with_schema_and_table_renames(
    mysql_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """The source database becomes schema ``shop`` and ``items`` becomes ``products``:
    before the fix every table failed with ``schema "t_..." does not exist``."""
    database = EndpointURL.parse(mysql_db).database
    execute(
        mysql_db,
        [
            "CREATE TABLE kinds (id int PRIMARY KEY, name varchar(20) NOT NULL UNIQUE)",
            "CREATE TABLE items (id int PRIMARY KEY AUTO_INCREMENT, "
            "kind_id int REFERENCES kinds(id), size ENUM('S','M','L') NOT NULL DEFAULT 'M', "
            "qty int NOT NULL DEFAULT 3 CHECK (qty >= 0), added date DEFAULT (curdate()), "
            "KEY items_qty (qty))",
            "INSERT INTO kinds VALUES (1, 'tool'), (2, 'toy')",
            "INSERT INTO items (kind_id, size, qty, added) VALUES (1, 'S', 5, '2024-01-02'), "
            "(2, 'L', 0, '2024-03-04')",
        ],
    )
    _run(
        mysql_db,
        pg_target_db,
        tmp_path,
        _rename("2", "schema", database, "%", "shop"),
        _rename("3", "table", database, "items", "products"),
    )
    conn = connect(pg_target_db)
    rows = query(conn, "SELECT id, kind_id, size::text, qty, added FROM shop.products ORDER BY id")
    assert rows == [(1, 1, "S", 5, dt.date(2024, 1, 2)), (2, 2, "L", 0, dt.date(2024, 3, 4))]
    assert query(conn, "SELECT id, name FROM shop.kinds ORDER BY id") == [(1, "tool"), (2, "toy")]
    # the converted DDL, not the plain one: default, check, enum type, index, unique
    query(conn, "INSERT INTO shop.products (id) VALUES (3)")
    assert query(conn, "SELECT size::text, qty, added FROM shop.products WHERE id = 3") == [
        ("M", 3, dt.date.today())
    ]
    with pytest.raises(Exception, match="check"):
        query(conn, "INSERT INTO shop.products (id, qty) VALUES (4, -1)")
    with pytest.raises(Exception, match="duplicate key"):
        query(conn, "INSERT INTO shop.kinds VALUES (3, 'toy')")
    indexes = query(conn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'shop'")
    assert ("products_items_qty",) in indexes
    assert query(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (database,)) == [
        (0,)
    ]
    conn.close()


def test_pg_to_mysql_with_table_rename(pg_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    """A PostgreSQL domain, a clock default and a renamed table into MariaDB."""
    execute(
        pg_db,
        [
            "CREATE DOMAIN year AS integer CHECK (VALUE BETWEEN 1901 AND 2155)",
            "CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, "
            "release_year year, added date NOT NULL DEFAULT ('now'::text)::date, "
            "special_features text[], active boolean NOT NULL DEFAULT true)",
            "INSERT INTO film (title, release_year, added, special_features) VALUES "
            "('Alien', 1979, '2024-01-02', '{Trailers}'), ('Heat', 1995, '2024-03-04', NULL)",
        ],
    )
    _run(pg_db, mysql_target_db, tmp_path, _rename("2", "table", "public", "film", "movie"))
    conn = connect(mysql_target_db)
    rows = query(conn, "SELECT film_id, title, release_year, added, active FROM movie ORDER BY 1")
    assert rows == [
        (1, "Alien", 1979, dt.date(2024, 1, 2), 1),
        (2, "Heat", 1995, dt.date(2024, 3, 4), 1),
    ]
    query(conn, "INSERT INTO movie (title) VALUES ('Ran')")
    today = query(conn, "SELECT CURDATE()")[0][0]
    assert query(conn, "SELECT added, active FROM movie WHERE title = 'Ran'") == [(today, 1)]
    with pytest.raises(Exception, match="release_year"):
        query(conn, "INSERT INTO movie (title, release_year) VALUES ('Old', 1800)")
    conn.close()


def test_pg_to_pg_into_a_renamed_schema(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """Enum, domain and partitions follow the schema rename; rows reach the partitions."""
    execute(
        pg_db,
        [
            "CREATE TYPE mood AS ENUM ('ok', 'sad')",
            "CREATE DOMAIN year AS integer CHECK (VALUE > 1900)",
            "CREATE TABLE payment (id int, paid date NOT NULL DEFAULT ('now'::text)::date, "
            "mood mood, year year, PRIMARY KEY (paid, id)) PARTITION BY RANGE (paid)",
            "CREATE TABLE payment_2022 PARTITION OF payment "
            "FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')",
            "CREATE TABLE payment_2023 PARTITION OF payment "
            "FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
            "INSERT INTO payment VALUES (1, '2022-05-01', 'ok', 2022), "
            "(2, '2023-05-01', 'sad', 2023)",
        ],
    )
    _run(pg_db, pg_target_db, tmp_path, _rename("2", "schema", "public", "%", "sales"))
    conn = connect(pg_target_db)
    rows = query(
        conn, "SELECT tableoid::regclass::text, id, mood::text, year FROM sales.payment ORDER BY id"
    )
    assert rows == [("sales.payment_2022", 1, "ok", 2022), ("sales.payment_2023", 2, "sad", 2023)]
    types = query(
        conn,
        "SELECT t.typname, t.typtype::text FROM pg_type t JOIN pg_namespace n "
        "ON n.oid = t.typnamespace WHERE n.nspname = 'sales' AND t.typtype IN ('d', 'e') "
        "ORDER BY 1",
    )
    assert types == [("mood", "e"), ("year", "d")]
    with pytest.raises(Exception, match="year_check"):
        query(conn, "INSERT INTO sales.payment (id, year) VALUES (3, 1800)")
    conn.close()
