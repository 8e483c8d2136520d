"""The private test servers work with real data (and are configured for CDC)."""

from __future__ import annotations

import datetime as dt
import decimal
from urllib.parse import parse_qs, urlsplit

import psycopg
import pymysql
import pytest

from tests.support.servers import MariaDBServer, PostgresServer, SeaweedS3Server

ROWS = [
    (1, "alpha", decimal.Decimal("1.50"), dt.date(2024, 1, 2)),
    (2, "bêta ✓", decimal.Decimal("-20.25"), dt.date(1999, 12, 31)),
    (3, None, None, None),
]


def test_postgres_roundtrip(pg_server: PostgresServer, pg_db: str) -> None:
    assert pg_db.startswith(f"postgresql://postgres@127.0.0.1:{pg_server.port}/t_")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2), d date)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", ROWS)
        got = conn.execute("SELECT id, name, amount, d FROM t ORDER BY id").fetchall()
        assert got == ROWS
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert conn.execute("SHOW max_replication_slots").fetchone() == ("20",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
    # a logical slot can be created (wal_level=logical really is in effect)
    name = pg_db.rsplit("/", 1)[1]
    rows = pg_server.execute(
        "SELECT slot_name FROM pg_create_logical_replication_slot('s_test', 'pgoutput')", db=name
    )
    assert rows == [("s_test",)]  # the pg_db fixture drops the slot with the database


def test_postgres_password_user(pg_server: PostgresServer) -> None:
    url = pg_server.url(user="opendms", password="opendms-secret")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("opendms",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.url(user="opendms", password="wrong")).close()


def test_mariadb_roundtrip(mariadb_server: MariaDBServer, mysql_db: str) -> None:
    parts = urlsplit(mysql_db)
    assert (parts.scheme, parts.username, parts.hostname) == ("mysql", "root", "127.0.0.1")
    assert parts.port == mariadb_server.port
    db = parts.path.lstrip("/")
    conn = pymysql.connect(host="127.0.0.1", port=parts.port, user="root", database=db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE t (id int PRIMARY KEY, name varchar(50),"
                " amount decimal(10,2), d date)"
            )
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", ROWS)
            conn.commit()
            cur.execute("SELECT id, name, amount, d FROM t ORDER BY id")
            assert list(cur.fetchall()) == ROWS
            cur.execute("SELECT @@binlog_format, @@log_bin, @@binlog_row_image, @@server_id")
            assert cur.fetchone() == ("ROW", 1, "FULL", 1)
            cur.execute("SELECT @@binlog_row_metadata, @@bind_address, @@character_set_server")
            assert cur.fetchone() == ("FULL", "127.0.0.1", "utf8mb4")
    finally:
        conn.close()
    assert mariadb_server.execute("SELECT count(*) FROM t", db=db) == [(3,)]


def test_mariadb_password_user(mariadb_server: MariaDBServer) -> None:
    conn = pymysql.connect(
        host="127.0.0.1", port=mariadb_server.port, user="opendms", password="opendms-secret"
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user()")
            assert cur.fetchone() == ("opendms@%",)
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError) as err:
        pymysql.connect(
            host="127.0.0.1", port=mariadb_server.port, user="opendms", password="wrong"
        )
    assert err.value.args[0] == 1045  # access denied


def test_s3_roundtrip(s3_server: SeaweedS3Server, s3_url: str) -> None:
    import os

    import boto3

    parts = urlsplit(s3_url)
    assert parts.scheme == "s3"
    query = parse_qs(parts.query)
    assert query == {"endpoint_url": [s3_server.endpoint_url], "region": ["us-east-1"]}
    assert os.environ["AWS_ACCESS_KEY_ID"] == "opendms"
    bucket, prefix = parts.netloc, parts.path.strip("/")
    # a client built only from the environment the fixture set
    client = boto3.session.Session().client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    payload = bytes(range(256)) * 4096 + "é✓".encode()
    client.put_object(Bucket=bucket, Key=f"{prefix}/part-0.bin", Body=payload)
    got = client.get_object(Bucket=bucket, Key=f"{prefix}/part-0.bin")["Body"].read()
    assert got == payload
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/part-0.bin"]


def test_s3_rejects_bad_credentials(s3_server: SeaweedS3Server) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="wrong",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError):
        client.list_buckets()


def test_markers_applied(request: pytest.FixtureRequest, pg_db: str) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert request.node.get_closest_marker("s3") is None
