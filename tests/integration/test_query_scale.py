"""Pushdown at the acceptance's sizes: a filtered query on a 1M-row PostgreSQL table and
on a 100k-item DynamoDB table reads only the matching rows. Proven at the source: the
statement PostgreSQL logged (``log_statement = all`` for the test's database) and its
index/sequential-scan counters; the DynamoDB calls botocore made, counted by the test's
own hook. Each answer equals the same query run natively."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from opendms.endpoints.query.plan import parse, plan
from opendms.endpoints.query.sources import SourceOptions, open_query_source
from opendms.query.run import QueryOptions, run_query
from tests.support.dynamodb import DynaliteServer, create_table, put_items
from tests.support.servers import PostgresServer
from tests.support.sql import connect, execute, query

pytestmark = pytest.mark.timeout(600)


def test_a_filter_on_1m_postgresql_rows_reads_only_the_matches(
    pg_server: PostgresServer, pg_db: str
) -> None:
    table = f"big_{uuid.uuid4().hex[:8]}"
    execute(
        pg_db,
        [
            f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric(10,2))",
            f"INSERT INTO {table} SELECT g, md5(g::text), (g % 1000) / 4.0"
            " FROM generate_series(1, 1000000) g",
            f"ANALYZE {table}",
        ],
    )
    database = pg_db.rsplit("/", 1)[1].split("?")[0]
    execute(pg_db, [f"ALTER DATABASE {database} SET log_statement = 'all'"])
    before = _scans(pg_db, table)
    logged_from = pg_server.log_path.stat().st_size
    sql = f"SELECT id, name, amount FROM pg.public.{table} WHERE id BETWEEN 500000 AND 500009"
    result = run_query(sql + " ORDER BY id", QueryOptions({"pg": pg_db}))

    conn = connect(pg_db)
    try:
        native = query(conn, f"SELECT id, name, amount FROM {table} WHERE id BETWEEN 500000 AND"
                             " 500009 ORDER BY id")  # fmt: skip
    finally:
        conn.close()
    assert [tuple(r.values()) for r in result.table.to_pylist()] == [tuple(r) for r in native]
    assert len(native) == 10 and native[0][2] == Decimal("0.00")
    assert [r.rows for r in result.reads] == [10]
    seq, idx = _scans(pg_db, table)
    assert seq == before[0] and idx > before[1]  # no sequential scan, the key's index
    with pg_server.log_path.open(encoding="utf-8", errors="replace") as log:
        log.seek(logged_from)
        sent = [line for line in log if "statement:" in line and table in line]
    reads = [line for line in sent if "SELECT" in line and "pg_stat" not in line]
    assert len(reads) == 1, sent
    assert "500000" in reads[0] and "500009" in reads[0] and "WHERE" in reads[0]


def _scans(url: str, table: str) -> tuple[int, int]:
    conn = connect(url)
    try:
        found = query(
            conn, "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = %s", (table,)
        )
        return int(found[0][0]), int(found[0][1] or 0)
    finally:
        conn.close()


def test_a_bound_partition_key_on_100k_dynamodb_items_makes_one_query(
    dynalite_server: DynaliteServer, dynalite_url: str
) -> None:
    client = dynalite_server.client()
    name = f"items_{uuid.uuid4().hex[:8]}"
    create_table(client, name, [("ride", "N"), ("seq", "N")])
    items = [
        {"ride": {"N": str(i // 10)}, "seq": {"N": str(i % 10)}, "amount": {"N": f"{i}.25"}}
        for i in range(100_000)
    ]
    _put_parallel(client, name, items)
    source = open_query_source(dynalite_url, SourceOptions())
    seen: list[str] = []
    source.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.dynamodb", lambda model, **_: seen.append(model.name)
    )
    found = parse(f"SELECT seq, amount FROM ddb.dynamodb.{name} WHERE ride = 4321")
    described = source.describe(found.tables[0])
    (scan,), _ = plan(found, [[c.name for c in described.columns]])
    request = source.request(scan, described)
    seen.clear()  # the catalog's calls (DescribeTable, a sampling Scan)
    got = [r for batch in source.read(request) for r in batch.to_pylist()]
    source.close()
    assert seen == ["Query"]  # one Query, no Scan of the 100k items
    native = client.query(
        TableName=name,
        KeyConditionExpression="ride = :r",
        ExpressionAttributeValues={":r": {"N": "4321"}},
        ConsistentRead=True,
    )["Items"]
    expected = sorted((int(i["seq"]["N"]), Decimal(i["amount"]["N"])) for i in native)
    assert sorted((int(r["seq"]), Decimal(str(r["amount"]))) for r in got) == expected
    assert len(expected) == 10 and expected[0] == (0, Decimal("43210.25"))
    whole = run_query(
        f"SELECT seq, amount FROM ddb.dynamodb.{name} WHERE ride = 4321 ORDER BY seq",
        QueryOptions({"ddb": dynalite_url}),
    )
    assert [r.rows for r in whole.reads] == [10] and whole.reads[0].request.calls == {"Query": 1}
    assert [(int(r["seq"]), Decimal(str(r["amount"]))) for r in whole.table.to_pylist()] == expected


def _put_parallel(client: Any, name: str, items: list[dict[str, Any]]) -> None:
    """The items written by 8 threads (one client is thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    size = len(items) // 8 + 1
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda part: put_items(client, name, part), parts))
