"""``opendms query`` on real servers: every source kind's rows and exact values, a
join across three endpoints, and pushdown proven at the source (the SQL sent, rows
read, PostgreSQL's own index/sequential scan counters, DynamoDB's API calls counted by
botocore hooks) with answers equal to the same query run natively."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.endpoints.query.plan import parse, plan
from opendms.endpoints.query.sources import SourceOptions, open_query_source
from opendms.errors import ConfigError
from opendms.query.run import QueryOptions, QueryResult, run_query
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.support.dynamodb import create_table, put_items
from tests.support.sql import connect, execute, query

PG_SETUP = [
    "CREATE TABLE trips (id int PRIMARY KEY, rider int, fare numeric(10,2), tip numeric, "
    "started timestamptz, raw bytea, doc jsonb, city text)",
    "INSERT INTO trips SELECT g, g % 50, g * 0.25, g / 8.0, "
    "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', "
    "decode(lpad(to_hex(g), 4, '0'), 'hex'), jsonb_build_object('n', g), "
    "(ARRAY['paris','oslo','rome'])[g % 3 + 1] FROM generate_series(1, 20000) g",
    "ANALYZE trips",
]


def ask(sql: str, keys: dict[str, tuple[str, ...]] | None = None, **urls: str) -> QueryResult:
    return run_query(sql, QueryOptions(urls, keys or {}))


def rows(result: QueryResult) -> list[dict[str, Any]]:
    return result.table.to_pylist()


@pytest.fixture
def pg(pg_db: str) -> str:
    execute(pg_db, PG_SETUP)
    return pg_db


def _scans(url: str) -> tuple[int, int]:
    """(sequential scans, index scans) PostgreSQL counted on ``trips``."""
    conn = connect(url)
    try:
        found = query(
            conn, "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'trips'"
        )
        return int(found[0][0]), int(found[0][1] or 0)
    finally:
        conn.close()


def _after(url: str, before: tuple[int, int]) -> tuple[int, int]:
    """The scan counters once the reading session's statistics arrived (it flushes them
    when it ends, a moment after the client closed it)."""
    deadline = time.monotonic() + 10
    while True:
        now = _scans(url)
        if now != before or time.monotonic() > deadline:
            return now[0] - before[0], now[1] - before[1]
        time.sleep(0.1)  # polling only; the deadline bounds the wait


def test_postgres_values_and_pushdown(pg: str) -> None:
    before = _scans(pg)
    result = ask(
        "SELECT id, fare, tip, started, raw, doc FROM pg.public.trips WHERE id = 77", pg=pg
    )
    assert rows(result) == [
        {
            "id": 77,
            "fare": Decimal("19.25"),
            "tip": Decimal("9.625"),  # numeric without precision: DECIMAL(p, s), exact
            "started": datetime(2024, 1, 1, 1, 17, tzinfo=UTC),
            "raw": b"\x00\x4d",
            "doc": '{"n": 77}',
        }
    ]
    (read,) = result.reads
    assert 'WHERE ("id" = 77)' in read.request.text and read.rows == 1
    assert _after(pg, before) == (0, 1)  # the server used the key's index, no table scan
    before = _scans(pg)
    kept = ask("SELECT id FROM pg.public.trips WHERE id + 0 = 77", pg=pg)
    assert rows(kept) == [{"id": 77}] and kept.reads[0].rows == 20000
    assert _after(pg, before)[0] == 1  # the method sees a scan when nothing is pushed


def test_postgres_filtered_answer_equals_native(pg: str) -> None:
    sql = (
        "SELECT city, count(*) AS n, sum(fare) AS total FROM {t} "
        "WHERE rider IN (3, 4) AND fare > 100 AND city LIKE '%o%' GROUP BY city ORDER BY city"
    )
    result = ask(sql.format(t="pg.public.trips"), pg=pg)
    conn = connect(pg)
    native = query(conn, sql.format(t="trips"))
    conn.close()
    assert [tuple(r.values()) for r in rows(result)] == [tuple(r) for r in native]
    (read,) = result.reads
    assert read.rows == sum(n for _, n, _ in native)  # only matching rows left the server
    assert '"rider" IN (3, 4)' in read.request.text and "LIKE '%o%'" in read.request.text


def test_postgres_limit_pushed_only_when_whole_where_is(pg: str) -> None:
    lone = ask("SELECT id FROM pg.public.trips WHERE fare > 10 LIMIT 3", pg=pg)
    assert lone.table.num_rows == 3 and lone.reads[0].rows == 3
    assert lone.reads[0].request.text.endswith("LIMIT 3")
    partial = ask("SELECT id FROM pg.public.trips WHERE abs(fare) > 4999 LIMIT 3", pg=pg)
    assert rows(partial) == [{"id": 19997}, {"id": 19998}, {"id": 19999}] or (
        sorted(r["id"] for r in rows(partial)) == [19997, 19998, 19999]
    )
    assert "LIMIT" not in partial.reads[0].request.text


def test_mariadb_values_and_pushdown(mysql_db: str) -> None:
    execute(
        mysql_db,
        [
            "CREATE TABLE riders (id int PRIMARY KEY, name varchar(40), credit decimal(12,3), "
            "joined datetime(6), avatar blob, prefs json, vip tinyint(1))",
            "INSERT INTO riders VALUES (1, 'Ann', 10.125, '2024-02-03 04:05:06.789', "
            "x'cafe', '{\"a\": [1, 2]}', 1), (2, 'bob', -0.5, NULL, NULL, NULL, 0), "
            "(3, 'Cid', 99999.999, '2023-12-31 23:59:59', '', '[]', 2)",
        ],
    )
    db = mysql_db.rsplit("/", 1)[1].split("?")[0]
    result = ask(
        f"SELECT id, name, credit, joined, avatar, prefs, vip FROM my.{db}.riders "
        "WHERE credit >= 0 AND name = 'ann' ORDER BY id",
        my=mysql_db,
    )
    # MySQL's case-insensitive '=' sends 'Ann'; DuckDB's exact one drops it: same answer
    assert rows(result) == []
    result = ask(f"SELECT * FROM my.{db}.riders WHERE credit >= 0 AND vip ORDER BY id", my=mysql_db)
    assert [(r["id"], r["credit"], r["joined"], r["avatar"], r["vip"]) for r in rows(result)] == [
        (1, Decimal("10.125"), datetime(2024, 2, 3, 4, 5, 6, 789000), b"\xca\xfe", 1),
        (3, Decimal("99999.999"), datetime(2023, 12, 31, 23, 59, 59), b"", 2),
    ]
    assert json.loads(rows(result)[0]["prefs"]) == {"a": [1, 2]}
    (read,) = result.reads
    assert (
        "WHERE (`credit` >= 0)" in read.request.text
        and "vip" not in read.request.text.split("WHERE")[1]
    )
    assert read.rows == 2


def test_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    execute(
        url,
        [
            "CREATE TABLE notes (id integer PRIMARY KEY, body text, score real, at timestamp)",
            "INSERT INTO notes VALUES (1, 'x', 1.5, '2024-01-01 10:00:00'), "
            "(2, 'y', 2.5, NULL), (3, NULL, NULL, NULL)",
        ],
    )
    result = ask("SELECT * FROM s.main.notes WHERE id > 1 AND body IS NOT NULL", s=url)
    assert rows(result) == [{"id": 2, "body": "y", "score": 2.5, "at": None}]
    assert 'WHERE ("id" > 1) AND (NOT "body" IS NULL)' in result.reads[0].request.text
    assert result.reads[0].rows == 1


ACCOUNTS = [
    "CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2))",
    "INSERT INTO accounts SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 200) g",
]
CHANGES = [
    "INSERT INTO accounts VALUES (201, 'new', 1.25)",
    "UPDATE accounts SET balance = balance + 1 WHERE id <= 10",
    "UPDATE accounts SET id = 1001 WHERE id = 20",
    "DELETE FROM accounts WHERE id BETWEEN 30 AND 39",
]


def _to_lake(source: str, lake: str, tmp_path: Path) -> None:
    spec = task_from_dict(
        {
            "name": "lake",
            "source": source,
            "target": {"url": lake, "settings": "DataFormat=parquet;CdcMaxBatchInterval=1"},
            "migration_type": "full-load-and-cdc",
        },
        where="test",
    )
    run_task(spec, StateStore(tmp_path / "state.db"))


def test_lake_from_full_load_and_cdc(pg_db: str, tmp_path: Path) -> None:
    lake = f"file://{tmp_path}/lake?DataFormat=parquet"
    execute(pg_db, ACCOUNTS)
    _to_lake(pg_db, lake, tmp_path)
    execute(pg_db, CHANGES)
    _to_lake(pg_db, lake, tmp_path)
    keys: dict[str, tuple[str, ...]] = {"lk.public.accounts": ("id",)}
    result = ask("SELECT * FROM lk.public.accounts ORDER BY id", keys, lk=lake)
    conn = connect(pg_db)
    native = query(conn, "SELECT id, name, balance FROM accounts ORDER BY id")
    conn.close()
    assert [tuple(r.values()) for r in rows(result)] == [tuple(r) for r in native]
    assert len(native) == 200 + 1 - 10 and result.reads[0].rows == len(native)
    changes = ask(
        'SELECT Op, count(*) AS n FROM lk.public."accounts$changes" GROUP BY Op ORDER BY Op',
        lk=lake,
    )
    assert rows(changes) == [{"Op": "D", "n": 11}, {"Op": "I", "n": 1}, {"Op": "U", "n": 11}]
    with pytest.raises(ConfigError, match=r"--key lk\.public\.accounts=COLUMN"):
        ask("SELECT count(*) FROM lk.public.accounts", lk=lake)


def _dynamo_table(client: Any) -> str:
    name = f"items{uuid.uuid4().hex[:8]}"
    create_table(client, name, [("ride", "N"), ("seq", "N")])
    items = [
        {
            "ride": {"N": str(i % 30)},
            "seq": {"N": str(i)},
            "price": {"N": f"{i}.5"},
            "kind": {"S": "tip" if i % 4 == 0 else "fare"},
            "blob": {"B": bytes([i % 256])},
        }
        for i in range(300)
    ]
    put_items(client, name, items)
    return name


@pytest.fixture
def dynamo(dynalite_server: Any, dynalite_url: str) -> tuple[str, str]:
    return dynalite_url, _dynamo_table(dynalite_server.client())


def test_dynamodb_bound_key_is_a_query(dynamo: tuple[str, str]) -> None:
    url, table = dynamo
    source = open_query_source(url, SourceOptions())
    seen: list[str] = []
    source.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.dynamodb", lambda model, **_: seen.append(model.name)
    )
    sql = (
        f"SELECT seq, price, kind FROM d.dynamodb.{table} "
        "WHERE ride = 7 AND seq > 100 AND kind = 'fare'"
    )
    query_plan = parse(sql)
    described = source.describe(query_plan.tables[0])
    (scan,), _ = plan(query_plan, [[c.name for c in described.columns]])
    request = source.request(scan, described)
    seen.clear()  # the catalog's calls (ListTables, DescribeTable, a sampling Scan)
    assert request.text.startswith("Query ") and "KeyConditionExpression" in request.text
    got = [r for b in source.read(request) for r in b.to_pylist()]
    source.close()
    expected = [i for i in range(300) if i % 30 == 7 and i > 100 and i % 4 != 0]
    assert sorted(int(r["seq"]) for r in got) == expected
    assert seen == ["Query"] and request.calls == {"Query": 1}
    result = ask(sql + " ORDER BY seq", d=url)
    assert [(r["seq"], r["price"]) for r in rows(result)] == [
        (i, Decimal(f"{i}.5")) for i in expected
    ]
    assert result.reads[0].request.calls == {"Query": 1}


def test_dynamodb_scan_with_filter_and_in(dynamo: tuple[str, str]) -> None:
    url, table = dynamo
    scan = ask(
        f"SELECT count(*) AS n FROM d.dynamodb.{table} WHERE kind = 'tip' AND price < 100", d=url
    )
    assert rows(scan) == [{"n": 25}]
    (read,) = scan.reads
    assert read.rows == 25 and set(read.request.calls) == {"Scan"}
    assert "FilterExpression" in read.request.text
    many = ask(f"SELECT seq FROM d.dynamodb.{table} WHERE ride IN (1, 2) ORDER BY seq", d=url)
    assert [r["seq"] for r in rows(many)] == sorted(i for i in range(300) if i % 30 in (1, 2))
    assert many.reads[0].request.calls == {"Query": 2}
    limited = ask(f"SELECT blob FROM d.dynamodb.{table} WHERE ride = 3 LIMIT 4", d=url)
    assert limited.reads[0].rows == 4 and all(len(r["blob"]) == 1 for r in rows(limited))


def test_join_across_three_endpoints(pg: str, mysql_db: str, dynamo: tuple[str, str]) -> None:
    url, table = dynamo
    execute(
        mysql_db,
        [
            "CREATE TABLE riders (id int PRIMARY KEY, name varchar(20))",
            "INSERT INTO riders VALUES " + ", ".join(f"({i}, 'rider {i}')" for i in range(50)),
        ],
    )
    db = mysql_db.rsplit("/", 1)[1].split("?")[0]
    sql = (
        "SELECT r.name, t.id, sum(i.price) AS extra FROM pg.public.trips t "
        f"JOIN my.{db}.riders r ON r.id = t.rider JOIN d.dynamodb.{table} i ON i.ride = t.id "
        "WHERE t.id BETWEEN 5 AND 7 AND i.kind = 'tip' GROUP BY r.name, t.id ORDER BY t.id"
    )
    endpoints = {"pg": pg, "my": mysql_db, "d": url}
    result = run_query(sql, QueryOptions(endpoints))
    tips = {
        r: sum(Decimal(f"{i}.5") for i in range(300) if i % 30 == r and i % 4 == 0)
        for r in (5, 6, 7)
    }
    expected = [{"name": f"rider {r}", "id": r, "extra": tips[r]} for r in (5, 6, 7) if tips[r]]
    assert rows(result) == expected
    # t.id BETWEEN 5 AND 7 reaches DynamoDB through the join: i.ride BETWEEN 5 AND 7
    tip_items = sum(1 for i in range(300) if i % 30 in (5, 6, 7) and i % 4 == 0)
    assert [r.rows for r in result.reads] == [3, 50, tip_items]
    whole = run_query(sql, QueryOptions(endpoints, pushdown=False))
    assert rows(whole) == expected and [r.rows for r in whole.reads] == [20000, 50, 300]
