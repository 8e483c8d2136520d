"""Lake targets (local, SeaweedFS S3): DMS layout and settings; pyarrow and DuckDB read-back."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import duckdb
import psycopg
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from opendms.config import task_from_dict
from opendms.engine.task import run_task
from opendms.state import StateStore
from tests.integration.readback import s3_filesystem

ROWS = 5000


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


def test_parquet_on_s3_matches_source(orders: str, s3_url: str, tmp_path: Path) -> None:
    store = _run(
        orders,
        s3_url,
        tmp_path,
        **{
            "DataFormat": "parquet",
            "timestampColumnName": "extracted_at",
            "includeOpForFullLoad": "true",
        },
    )
    assert store.tables("lake")[0].full_load_rows == ROWS
    fs, root = s3_filesystem(s3_url)
    files = [f.path for f in fs.get_file_info(pafs.FileSelector(f"{root}/public/orders"))]
    assert files == [f"{root}/public/orders/LOAD00000001.parquet"]
    table = ds.dataset(files, filesystem=fs, format="parquet").to_table()
    assert table.column_names[:2] == ["Op", "extracted_at"]
    assert set(table.column("Op").to_pylist()) == {"I"}
    got = table.drop_columns(["Op", "extracted_at"]).sort_by("order_id").to_pylist()
    want = _expected(orders)
    assert [tuple(r.values()) for r in got] == want


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
    _run(
        orders,
        f"file://{lake}",
        tmp_path,
        DataFormat="csv",
        CsvDelimiter="|",
        CsvNullValue="NULL",
        AddColumnName="true",
        CompressionType="GZIP",
    )
    path = lake / "public/orders/LOAD00000001.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    rows = list(csv.reader(io.StringIO(text), delimiter="|"))
    assert rows[0] == ["order_id", "customer", "total", "note", "placed"]
    body = sorted(rows[1:], key=lambda r: int(r[0]))
    assert len(body) == ROWS
    want = _expected(orders)
    assert body[9][3] == "NULL" and want[9][3] is None
    assert body[0][3] == "" and want[0][3] == ""
    assert body[1][3] == want[1][3]
    assert [r[2] for r in body[:3]] == [str(w[2]) for w in want[:3]]


def test_max_file_size_rolls_files_and_rerun_replaces(orders: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    settings = {"DataFormat": "csv", "MaxFileSize": "16", "RowGroupLength": "500"}
    _run(orders, f"file://{lake}", tmp_path, **settings)
    first = sorted(p.name for p in (lake / "public/orders").iterdir())
    assert len(first) > 3
    assert first[:2] == ["LOAD00000001.csv", "LOAD00000002.csv"]
    assert all(p.stat().st_size < 40 * 1024 for p in (lake / "public/orders").iterdir())
    _run(orders, f"file://{lake}", tmp_path, **settings)
    second = sorted(p.name for p in (lake / "public/orders").iterdir())
    assert second == first
    lines = sum(len(p.read_text().splitlines()) for p in (lake / "public/orders").iterdir())
    assert lines == ROWS


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
    names = sorted(p.name for p in (lake / "public/orders").iterdir())
    assert names == [f"SEGMENT{i}_LOAD00000001.parquet" for i in (1, 2, 3)]
    counts = [ds.dataset(str(lake / "public/orders" / n)).count_rows() for n in names]
    assert counts == [1000, 1500, 2500]
    table = ds.dataset(str(lake / "public/orders")).to_table().sort_by("order_id")
    assert table.column("order_id").to_pylist() == list(range(1, ROWS + 1))


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
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=parts.netloc)["Contents"]]
    assert keys == ["lake/public/orders/LOAD00000001.csv"]
    body = client.get_object(Bucket=parts.netloc, Key=keys[0])["Body"].read().decode()
    assert len(body.splitlines()) == ROWS


@pytest.mark.parametrize(("version", "written"), [("parquet-1-0", "1.0"), ("parquet-2-0", "2.6")])
def test_parquet_versions(orders: str, tmp_path: Path, version: str, written: str) -> None:
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    _run(orders, f"file://{lake}", tmp_path, DataFormat="parquet", ParquetVersion=version)
    meta = pq.ParquetFile(lake / "public/orders/LOAD00000001.parquet").metadata
    assert meta.format_version == written
    assert meta.num_rows == ROWS
