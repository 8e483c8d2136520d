"""A MySQL apply session orphaned by a cut link (its client gone, its transaction and
row locks still on the server for hours) is ended by the task's next apply session,
so the reconnected task does not wait on its own locks."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.endpoints import open_applier, open_target
from opendms.endpoints.engine import ApplyOptions
from opendms.endpoints.mysql.apply import MySqlApplier
from tests.support.sql import connect, execute, query

pytestmark = pytest.mark.mysql


def _applier(target: Any, task: str) -> MySqlApplier:
    applier = open_applier(target, task, [], ApplyOptions())
    assert isinstance(applier, MySqlApplier)
    return applier


def _rows(url: str, sql: str) -> list[Any]:
    conn = connect(url)
    try:
        return query(conn, sql)
    finally:
        conn.close()


def test_the_next_session_ends_the_orphan_and_its_locks(mysql_target_db: str) -> None:
    execute(
        mysql_target_db,
        ["CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 0)"],
    )
    target = open_target(mysql_target_db)
    orphan = _applier(target, "orphans")
    orphan.conn.begin()
    with orphan.conn.cursor() as cur:  # a row lock held by a session nobody will end
        cur.execute(f"UPDATE `{orphan.database}`.t SET v = 1 WHERE id = 1")
    orphan_id = int(orphan.conn.thread_id())
    other_task = _applier(target, "someone-else")
    fresh = _applier(target, "orphans")
    try:
        sessions = {int(r[0]) for r in _rows(mysql_target_db, "SHOW PROCESSLIST")}
        assert orphan_id not in sessions  # ended, its transaction rolled back
        assert {int(fresh.conn.thread_id()), int(other_task.conn.thread_id())} <= sessions
        conn = connect(mysql_target_db)  # autocommit
        try:
            query(conn, "SET SESSION innodb_lock_wait_timeout = 3")
            query(conn, "UPDATE t SET v = 2 WHERE id = 1")  # no lock left to wait on
        finally:
            conn.close()
        assert [tuple(r) for r in _rows(mysql_target_db, "SELECT v FROM t")] == [(2,)]
    finally:
        for applier in (fresh, other_task):
            applier.close()
        target.close()
