"""Premigration assessment against servers configured wrong on purpose, and right."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from opendms.assess import Check, Status, assess
from opendms.cli.main import cli
from opendms.config import task_from_dict
from tests.support.servers import MariaDBServer, PostgresServer


def _spec(source: str, target: str, mtype: str = "full-load-and-cdc") -> Any:
    return task_from_dict(
        {"name": "a", "source": source, "target": target, "migration_type": mtype}, where="test"
    )


def _by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


@pytest.fixture(scope="module")
def replica_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL with wal_level=replica: CDC cannot work."""
    with PostgresServer(settings={"wal_level": "replica"}) as server:
        yield server


def test_pg_source_configured_wrong(replica_pg: PostgresServer, pg_target_db: str) -> None:
    url = replica_pg.create_database("shop")
    replica_pg.execute("CREATE TABLE keyed (id int PRIMARY KEY, v text)", db="shop")
    replica_pg.execute("CREATE TABLE loose (id int, v text)", db="shop")
    checks = _by_id(assess(_spec(url, pg_target_db)))
    wal = checks["pg-wal-level"]
    assert wal.status is Status.FAILED and "replica" in wal.message
    assert "wal_level = logical" in wal.remediation
    ident = checks["pg-replica-identity"]
    assert ident.status is Status.FAILED and ident.objects == ("public.loose",)
    assert "REPLICA IDENTITY FULL" in ident.remediation
    assert checks["tables-primary-key"].status is Status.WARNING
    assert checks["pg-select-privilege"].status is Status.PASSED
    # the same source is fine for a full load: the CDC checks are skipped
    full = _by_id(assess(_spec(url, pg_target_db, "full-load")))
    assert full["pg-wal-level"].status is Status.SKIPPED
    assert not [c for c in full.values() if c.status is Status.FAILED]


def test_pg_user_without_privileges(
    pg_db: str, pg_server: PostgresServer, pg_target_db: str
) -> None:
    role = "weak_" + uuid.uuid4().hex[:8]
    pg_server.execute(f"CREATE ROLE {role} LOGIN")
    db = pg_db.rsplit("/", 1)[1]
    pg_server.execute("CREATE TABLE t (id int PRIMARY KEY)", db=db)
    weak = pg_server.url(db, user=role)
    checks = _by_id(assess(_spec(weak, pg_target_db)))
    assert checks["pg-replication-role"].status is Status.FAILED
    assert f'ALTER ROLE "{role}" REPLICATION' in checks["pg-replication-role"].remediation
    select = checks["pg-select-privilege"]
    assert select.status is Status.FAILED and select.objects == ("public.t",)
    pg_server.execute(f"DROP OWNED BY {role}", db=db)


def test_pg_correct_setup_passes(pg_db: str, pg_target_db: str) -> None:
    import psycopg

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz, span interval)")
    checks = assess(_spec(pg_db, pg_target_db))
    assert not [c for c in checks if c.status is Status.FAILED], checks
    assert _by_id(checks)["pg-wal-level"].status is Status.PASSED


def test_mysql_source_configured_wrong(
    mysql_db: str, mariadb_server: MariaDBServer, pg_target_db: str
) -> None:
    mariadb_server.execute("CREATE TABLE loose (id int, v text)", db=mysql_db.rsplit("/", 1)[1])
    mariadb_server.execute("SET GLOBAL binlog_format = 'STATEMENT'")
    try:
        checks = _by_id(assess(_spec(mysql_db, pg_target_db)))
    finally:
        mariadb_server.execute("SET GLOBAL binlog_format = 'ROW'")
    binlog = checks["mysql-binlog-settings"]
    assert binlog.status is Status.FAILED and "binlog_format is STATEMENT" in binlog.message
    assert "binlog_format = 'ROW'" in binlog.remediation
    assert checks["tables-primary-key"].status is Status.WARNING
    assert checks["tables-primary-key"].objects[0].endswith(".loose")
    assert not [c for c in assess(_spec(mysql_db, pg_target_db)) if c.status is Status.FAILED]


def test_mysql_user_without_privileges(
    mysql_db: str, mariadb_server: MariaDBServer, pg_target_db: str
) -> None:
    user = "weak_" + uuid.uuid4().hex[:8]
    mariadb_server.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
    try:
        db = mysql_db.rsplit("/", 1)[1]
        url = mariadb_server.url(db, user=user, password="pw")
        checks = _by_id(assess(_spec(url, pg_target_db)))
    finally:
        mariadb_server.execute(f"DROP USER '{user}'@'%'")
    priv = checks.get("mysql-replication-privileges") or checks["source-connection"]
    assert priv.status is Status.FAILED, checks


def test_mysql_target_without_local_infile(
    pg_db: str, mysql_target_db: str, mariadb_server: MariaDBServer
) -> None:
    mariadb_server.execute("SET GLOBAL local_infile = 0")
    try:
        checks = _by_id(assess(_spec(pg_db, mysql_target_db, "full-load")))
    finally:
        mariadb_server.execute("SET GLOBAL local_infile = 1")
    assert "mysql-local-infile" in checks, checks
    infile = checks["mysql-local-infile"]
    assert infile.status is Status.FAILED and "local_infile = ON" in infile.remediation


def test_cli_assess_and_task_run_gate(
    replica_pg: PostgresServer, pg_target_db: str, tmp_path: Path
) -> None:
    url = replica_pg.create_database("gate")
    replica_pg.execute("CREATE TABLE t (id int PRIMARY KEY)", db="gate")
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {"name": "gate", "source": url, "target": pg_target_db, "migration_type": "cdc"}
        )
    )
    runner = CliRunner()
    state = ["--state", str(tmp_path / "s.db")]
    result = runner.invoke(cli, [*state, "assess", "--json", str(task)])
    assert result.exit_code == 1
    checks = {c["id"]: c for c in json.loads(result.stdout)}
    assert checks["pg-wal-level"]["status"] == "failed"
    result = runner.invoke(cli, [*state, "task", "run", "--quiet", str(task)])
    assert result.exit_code == 1 and "pg-wal-level" in result.output
    assert "Traceback" not in result.output
