"""Lake targets (local, SeaweedFS S3): DMS layout and settings; read back by the
independent reader (:mod:`tests.oracles.lake`), DuckDB and boto3, values compared with
the source's. File names follow the README's rules (hex LOAD counter, SEGMENTn_)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import duckdb
import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.lake import LakeTable, read_lake
from tests.oracles.lakefiles import csv_records, load_name

ROWS = 5000
KEYS = {"public.orders": ["order_id"]}
COLUMNS = ["order_id", "customer", "total", "note", "placed"]
PARSE: dict[str, Callable[[str], Any]] = {
    "order_id": int,
    "total": Decimal,
    "placed": datetime.fromisoformat,
}


@pytest.fixture
def orders(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (order_id int PRIMARY KEY, customer text, "
            "total numeric(10,2), note text, placed timestamptz)"
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 'cust ' || (g %% 97), (g * 1.25)::numeric(10,2), "
            "CASE WHEN g %% 10 = 0 THEN NULL WHEN g %% 10 = 1 THEN '' "
            "ELSE 'note, \"quoted\" ' || g END, "
            "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' "
            "FROM generate_series(1, %s) g",
            (ROWS,),
        )
    return pg_db


def _run(
    source: str, target: str, tmp_path: Path, mappings: Any = None, **settings: Any
) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec: dict[str, Any] = {
        "name": "lake",
        "source": source,
        "target": {"url": target, "settings": settings},
    }
    if mappings:
        spec["table_mappings"] = mappings
    run_task(task_from_dict(spec, where="test"), store)
    return store


def _expected(pg_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT order_id, customer, total, note, placed FROM orders ORDER BY 1")
        return rows.fetchall()


def _values(t: LakeTable) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in COLUMNS) for r in t.rows]


def _names(t: LakeTable) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in t.loads]


def test_parquet_on_s3_matches_source(orders: str, s3_url: str, tmp_path: Path) -> None:
    settings = {
        "DataFormat": "parquet",
        "timestampColumnName": "extracted_at",
        "includeOpForFullLoad": "true",
    }
    store = _run(orders, s3_url, tmp_path, **settings)
    assert store.tables("lake")[0].full_load_rows == ROWS
    lake = read_lake(s3_url, settings, keys=KEYS)
    table = lake["public.orders"]
    assert lake.files == ["public/orders/LOAD00000001.parquet"]
    assert {r.op for r in table.load_rows} == {"I"}
    assert all(r.commit for r in table.load_rows)  # yyyy-MM-dd HH:mm:ss.SSSSSS, checked
    assert _values(table) == _expected(orders)


def test_parquet_read_back_with_duckdb(orders: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _run(orders, f"file://{lake}", tmp_path, DataFormat="parquet")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    got = con.execute(
        f"SELECT order_id, customer, total, note, placed FROM '{lake}/public/orders/*.parquet' "
        "ORDER BY 1"
    ).fetchall()
    assert got == _expected(orders)


def test_csv_settings(orders: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    settings = {
        "DataFormat": "csv",
        "CsvDelimiter": "|",
        "CsvNullValue": "NULL",
        "AddColumnName": "true",
        "CompressionType": "GZIP",
    }
    _run(orders, f"file://{lake}", tmp_path, **settings)
    path = lake / "public/orders/LOAD00000001.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.split("\n", 1)[0] == "|".join(f'"{c}"' for c in COLUMNS)
    table = read_lake(lake, settings, keys=KEYS, parse=PARSE)["public.orders"]
    want = _expected(orders)
    assert _values(table) == want
    assert want[9][3] is None and want[0][3] == ""  # NULL and '' told apart


def test_max_file_size_rolls_files_and_rerun_replaces(orders: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    settings = {"DataFormat": "csv", "MaxFileSize": "16", "RowGroupLength": "500"}
    _run(orders, f"file://{lake}", tmp_path, **settings)
    first = read_lake(lake, settings, keys=KEYS, columns=COLUMNS, parse=PARSE)["public.orders"]
    assert len(first.loads) > 3
    assert _names(first) == [load_name(n, "csv") for n in range(1, len(first.loads) + 1)]
    assert all(p.stat().st_size <= 16 * 1024 for p in (lake / "public/orders").iterdir())
    assert _values(first) == _expected(orders)
    _run(orders, f"file://{lake}", tmp_path, **settings)
    second = read_lake(lake, settings, keys=KEYS, columns=COLUMNS, parse=PARSE)["public.orders"]
    assert _names(second) == _names(first)
    assert _values(second) == _expected(orders)


def test_parallel_segments(orders: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    mappings = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "1",
                "object-locator": {"schema-name": "public", "table-name": "orders"},
                "rule-action": "include",
            },
            {
                "rule-type": "table-settings",
                "rule-id": "2",
                "rule-name": "2",
                "object-locator": {"schema-name": "public", "table-name": "orders"},
                "parallel-load": {
                    "type": "ranges",
                    "columns": ["order_id"],
                    "boundaries": [["1000"], ["2500"]],
                },
            },
        ]
    }
    _run(orders, f"file://{lake}", tmp_path, mappings, DataFormat="parquet")
    table = read_lake(lake, "DataFormat=parquet", keys=KEYS)["public.orders"]
    assert _names(table) == [load_name(1, "parquet", segment=i) for i in (1, 2, 3)]
    ranges = [range(1, 1001), range(1001, 2501), range(2501, ROWS + 1)]
    for path, ids in zip(table.loads, ranges, strict=True):  # each segment its range
        assert sorted(r.row["order_id"] for r in table.load_rows if r.file == path) == list(ids)
    assert _values(table) == _expected(orders)


def test_s3_wrong_credentials_is_a_clear_error(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opendms.endpoints import check_endpoint
    from opendms.errors import AuthenticationError

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(AuthenticationError, match="refused the credentials") as info:
        check_endpoint(s3_url)
    assert "wrong-secret" not in str(info.value)


def test_s3_missing_bucket(s3_url: str) -> None:
    from opendms.endpoints import check_endpoint
    from opendms.errors import DatabaseMissingError

    missing = s3_url.replace("s3://", "s3://no-such-bucket-x", 1)
    with pytest.raises(DatabaseMissingError, match="does not exist"):
        check_endpoint(missing)


def test_boto3_sees_the_objects(orders: str, s3_url: str, tmp_path: Path) -> None:
    _run(orders, s3_url, tmp_path, DataFormat="csv")
    parts = urlsplit(s3_url)
    endpoint = parse_qs(parts.query)["endpoint_url"][0]
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=parts.netloc)["Contents"]]
    assert keys == ["lake/public/orders/LOAD00000001.csv"]
    body = client.get_object(Bucket=parts.netloc, Key=keys[0])["Body"].read().decode()
    records = csv_records(body, ",", "\n", keys[0])  # README: quoted text, unquoted NULL
    got = [
        tuple(
            None if (text == "" and not quoted) else PARSE.get(column, str)(text)
            for column, (text, quoted) in zip(COLUMNS, record, strict=True)
        )
        for record in records
    ]
    assert got == _expected(orders)


@pytest.mark.parametrize(("version", "written"), [("parquet-1-0", "1.0"), ("parquet-2-0", "2.6")])
def test_parquet_versions(orders: str, tmp_path: Path, version: str, written: str) -> None:
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    _run(orders, f"file://{lake}", tmp_path, DataFormat="parquet", ParquetVersion=version)
    path = lake / "public/orders/LOAD00000001.parquet"
    assert pq.ParquetFile(path).metadata.format_version == written
    rows = pq.read_table(path).to_pylist()
    assert [tuple(r[c] for c in COLUMNS) for r in rows] == _expected(orders)


def test_s3_deletes_use_the_current_credentials(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3's default session keeps the first credentials it resolves: the lake's S3
    client must not reuse them (a long-lived process may see others later)."""
    import pyarrow.fs as pafs

    from opendms.endpoints.lake.s3delete import S3Deleter

    parts = urlsplit(s3_url)
    endpoint = parse_qs(parts.query)["endpoint_url"][0]
    with monkeypatch.context() as stale:
        stale.setenv("AWS_ACCESS_KEY_ID", "stale-key")
        stale.setenv("AWS_SECRET_ACCESS_KEY", "stale-secret")
        boto3.client("sts", region_name="us-east-1")  # noqa: TID251 (the cached default)
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = ["lake/a/1.csv", "lake/a/2.csv", "lake/b/3.csv"]
    for key in keys:
        client.put_object(Bucket=parts.netloc, Key=key, Body=b"x\n")
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1")
    deleter = S3Deleter(fs, {"endpoint_url": endpoint, "region_name": "us-east-1"})
    deleter([f"{parts.netloc}/{key}" for key in keys[:2]])
    left = [o["Key"] for o in client.list_objects_v2(Bucket=parts.netloc)["Contents"]]
    assert left == ["lake/b/3.csv"]
