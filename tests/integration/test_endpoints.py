"""`opendms endpoint test`: one clear line per failure, never a traceback or a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from opendms.cli.main import cli
from tests.support.servers import MariaDBServer, PostgresServer, free_port


def _test(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["endpoint", "test", *args])
    return result.exit_code, result.output


def test_postgres_ok(pg_db: str) -> None:
    code, out = _test(pg_db)
    assert code == 0
    assert "successful" in out and "PostgreSQL 15" in out


def test_mysql_ok(mysql_db: str) -> None:
    code, out = _test(mysql_db)
    assert code == 0
    assert "successful" in out and "MariaDB" in out


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable(scheme: str) -> None:
    code, out = _test(f"{scheme}://u:pw@127.0.0.1:{free_port()}/db")
    assert code == 1
    assert "cannot reach 127.0.0.1" in out and "refused" in out
    assert "Traceback" not in out and "pw@" not in out


def test_postgres_bad_password(pg_server: PostgresServer) -> None:
    url = f"postgresql://{pg_server.password_user}:not-the-password@127.0.0.1:{pg_server.port}/postgres"
    code, out = _test(url)
    assert code == 1
    assert "authentication failed for user 'opendms'" in out
    assert "not-the-password" not in out and "***" in out


def test_mysql_bad_password(mariadb_server: MariaDBServer) -> None:
    url = f"mysql://{mariadb_server.password_user}:wrong-pw@127.0.0.1:{mariadb_server.port}/mysql"
    code, out = _test(url)
    assert code == 1
    assert "authentication failed" in out and "wrong-pw" not in out


def test_postgres_database_missing(pg_server: PostgresServer) -> None:
    code, out = _test(pg_server.url("no_such_db"))
    assert code == 1 and "database 'no_such_db' does not exist" in out


def test_mysql_database_missing(mariadb_server: MariaDBServer) -> None:
    code, out = _test(mariadb_server.url("no_such_db"))
    assert code == 1 and "database 'no_such_db' does not exist" in out


def test_postgres_missing_privilege(pg_server: PostgresServer, pg_db: str) -> None:
    db = pg_db.rsplit("/", 1)[1]
    pg_server.execute("DROP ROLE IF EXISTS reader")
    pg_server.execute("CREATE ROLE reader LOGIN")
    pg_server.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC", db=db)
    url = f"postgresql://reader@127.0.0.1:{pg_server.port}/{db}"
    code, out = _test(url, "--settings", "role=target")
    assert code == 1 and "may not create tables" in out


def test_mysql_missing_privilege(mariadb_server: MariaDBServer, mysql_db: str) -> None:
    mariadb_server.execute("CREATE USER IF NOT EXISTS 'nobody'@'%' IDENTIFIED BY 'pw'")
    url = f"mysql://nobody:pw@127.0.0.1:{mariadb_server.port}/{mysql_db.rsplit('/', 1)[1]}"
    code, out = _test(url)
    assert code == 1 and "missing privilege" in out and "pw@" not in out


def test_sqlite_missing_file(tmp_path: Path) -> None:
    code, out = _test(f"sqlite:///{tmp_path}/none.db")
    assert code == 1 and "does not exist" in out


def test_unknown_scheme() -> None:
    code, out = _test("postgre://x@localhost/db")
    assert code == 2
    assert "unknown scheme 'postgre'" in out and "Did you mean 'postgres'" in out


def test_lake_directory(tmp_path: Path) -> None:
    code, out = _test(f"file://{tmp_path}/lake")
    assert code == 0 and "writable" in out
    code, out = _test(f"file://{tmp_path}/missing/parent/lake")
    assert code == 1 and "does not exist" in out


def test_lake_bad_setting(tmp_path: Path) -> None:
    code, out = _test(f"file://{tmp_path}", "--settings", "DataFormat=orc")
    assert code == 2 and "DataFormat" in out and "'orc'" in out
