"""Shared fixtures: private PostgreSQL / MariaDB / SeaweedFS-S3 servers.

The session-scoped servers start lazily (only when a selected test asks for them, directly
or through another fixture) on free ports of 127.0.0.1 and are stopped at session end; the
machine's own database services are never used. Tests using them are auto-marked
``postgres`` / ``mysql`` / ``s3``, so e.g. ``pytest -m "not s3"`` skips the S3 ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.brokers import NatsServer, RedisServer
from tests.support.dynamodb import DynaliteServer, MotoDynamoDBServer
from tests.support.servers import MariaDBServer, PostgresServer, SeaweedS3Server

_MARKERS_BY_FIXTURE = {
    "pg_server": "postgres",
    "pg_db": "postgres",
    "pg_target_db": "postgres",
    "mariadb_server": "mysql",
    "mysql_db": "mysql",
    "mysql_target_db": "mysql",
    "s3_server": "s3",
    "s3_url": "s3",
    "dynalite_server": "dynamodb",
    "moto_server": "dynamodb",
    "dynalite_url": "dynamodb",
    "moto_url": "dynamodb",
    "nats_server": "brokers",
    "redis_server": "brokers",
    "nats_url": "brokers",
    "redis_url": "brokers",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        for marker in sorted({m for f, m in _MARKERS_BY_FIXTURE.items() if f in fixturenames}):
            item.add_marker(getattr(pytest.mark, marker))


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15 (wal_level=logical) for the whole session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A private MariaDB (ROW binlog) for the whole session."""
    with MariaDBServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3Server]:
    """A private SeaweedFS S3 endpoint for the whole session."""
    with SeaweedS3Server() as server:
        yield server


@pytest.fixture
def pg_db(pg_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database on the private PostgreSQL (dropped afterwards)."""
    name = _unique("t_")
    url = pg_server.create_database(name)
    yield url
    try:
        pg_server.drop_database(name)
    except Exception as exc:  # cleanup only; never fail the test for it
        print(f"warning: could not drop PostgreSQL database {name}: {exc}")


@pytest.fixture
def mysql_db(mariadb_server: MariaDBServer) -> Iterator[str]:
    """URL of a fresh, empty database on the private MariaDB (dropped afterwards)."""
    name = _unique("t_")
    url = mariadb_server.create_database(name)
    yield url
    try:
        mariadb_server.drop_database(name)
    except Exception as exc:
        print(f"warning: could not drop MariaDB database {name}: {exc}")


@pytest.fixture
def s3_url(s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/lake?endpoint_url=...&region=...``, with the ``AWS_*``
    environment (credentials, region, endpoint) set for the test."""
    for var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = _unique("t-")
    s3_server.create_bucket(bucket)
    yield s3_server.url(bucket, "lake")
    try:
        s3_server.delete_bucket(bucket)
    except Exception as exc:
        print(f"warning: could not delete S3 bucket {bucket}: {exc}")


@pytest.fixture
def pg_target_db(pg_server: PostgresServer) -> Iterator[str]:
    """A second fresh database on the private PostgreSQL (for source != target)."""
    name = _unique("tt_")
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


@pytest.fixture
def mysql_target_db(mariadb_server: MariaDBServer) -> Iterator[str]:
    """A second fresh database on the private MariaDB (for source != target)."""
    name = _unique("tt_")
    yield mariadb_server.create_database(name)
    mariadb_server.drop_database(name)


@pytest.fixture(scope="session")
def dynalite_server() -> Iterator[DynaliteServer]:
    """A private dynalite (DynamoDB on LevelDB, Node.js) for the whole session."""
    with DynaliteServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoDynamoDBServer]:
    """A private moto server (DynamoDB with DynamoDB Streams) for the whole session."""
    with MotoDynamoDBServer() as server:
        yield server


def _dynamo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials in the environment (task processes inherit them)."""
    for var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


@pytest.fixture
def dynalite_url(dynalite_server: DynaliteServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``dynamodb://`` URL of the session's dynalite (tables: name them uniquely)."""
    _dynamo_env(monkeypatch)
    return dynalite_server.url()


@pytest.fixture
def moto_url(moto_server: MotoDynamoDBServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``dynamodb://`` URL of the session's moto server (with DynamoDB Streams)."""
    _dynamo_env(monkeypatch)
    return moto_server.url()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A private ``nats-server -js`` for the whole session."""
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` (no persistence) for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """A ``nats://`` URL of the session's server with a subject prefix of its own."""
    return nats_server.url(f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A ``redis://`` URL of the session's server with a key prefix of its own."""
    return redis_server.url(f"t{uuid.uuid4().hex[:12]}")
