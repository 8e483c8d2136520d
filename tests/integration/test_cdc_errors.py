"""Error policies during CDC (issue 8, section 1): a change the target cannot hold is
decided by DataErrorPolicy and its escalation, a failing table by TableErrorPolicy; the
task never sticks on one change and the other rows and tables go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.errors import TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.oracles.rows import read_rows
from tests.support.sql import execute


def table_rows(url: str, table: str, key: str) -> list[tuple[Any, ...]]:
    """The target's rows as value tuples, read with plain SQL (tests/oracles/rows.py)."""
    return [tuple(r.values()) for r in read_rows(url, table, key)]


def _run(source: str, target: str, tmp_path: Path, **behavior: Any) -> StateStore:
    spec = task_from_dict(
        {
            "name": "errs",
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"ErrorBehavior": behavior},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    return store


def _stats(store: StateStore) -> dict[str, Any]:
    return {t.name: t for t in store.tables("errs")}


def _pg_source(pg_db: str) -> None:
    execute(
        pg_db,
        [
            "CREATE TABLE a (id int PRIMARY KEY, x float8)",
            "CREATE TABLE b (id int PRIMARY KEY, v text)",
            "INSERT INTO a VALUES (0, 0.5)",
        ],
    )


BAD_TXN = [
    "BEGIN",
    "INSERT INTO a VALUES (1, 1.5)",
    "INSERT INTO a VALUES (2, 'NaN')",
    "INSERT INTO a VALUES (3, 2.5)",
    "INSERT INTO b VALUES (1, 'in the same transaction')",
    "COMMIT",
    "INSERT INTO b VALUES (2, 'after')",
]


@pytest.mark.parametrize("policy", ["LOG_ERROR", "IGNORE_RECORD"])
def test_a_nan_into_mysql_skips_only_that_row(
    pg_db: str, mysql_target_db: str, tmp_path: Path, policy: str
) -> None:
    _pg_source(pg_db)
    _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy=policy)
    execute(pg_db, BAD_TXN)
    store = _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy=policy)
    assert table_rows(mysql_target_db, "a", "id") == [(0, 0.5), (1, 1.5), (3, 2.5)]
    assert [r[0] for r in table_rows(mysql_target_db, "b", "id")] == [1, 2]
    stats = _stats(store)
    assert stats["a"].state is TableState.COMPLETED and stats["a"].error_rows == 1
    assert (stats["a"].inserts, stats["b"].inserts) == (3, 2)  # source changes seen
    errors = store.data_errors("errs")
    if policy == "IGNORE_RECORD":
        assert errors == []
        return
    assert len(errors) == 1
    table, key, _column, reason = errors[0]
    assert table == "public.a" and key == "id=2" and "NaN" in reason, errors
    assert store.data_error_values("errs") == ["id=2, x=nan"]


def test_suspend_table_suspends_only_that_table_and_stays_suspended(
    pg_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    _pg_source(pg_db)
    _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    execute(pg_db, BAD_TXN)
    store = _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    assert table_rows(mysql_target_db, "a", "id") == [(0, 0.5), (1, 1.5)]  # before the bad row
    assert [r[0] for r in table_rows(mysql_target_db, "b", "id")] == [1, 2]
    a = _stats(store)["a"]
    assert a.state is TableState.ERROR and a.error.startswith("suspended: ") and "NaN" in a.error
    execute(pg_db, ["INSERT INTO a VALUES (4, 4.5)", "INSERT INTO b VALUES (3, 'later')"])
    store = _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    assert [r[0] for r in table_rows(mysql_target_db, "a", "id")] == [0, 1]  # still suspended
    assert [r[0] for r in table_rows(mysql_target_db, "b", "id")] == [1, 2, 3]
    assert _stats(store)["a"].state is TableState.ERROR


def test_stop_task_stops_at_the_change_every_time(
    pg_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    _pg_source(pg_db)
    _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy="STOP_TASK")
    execute(pg_db, ["INSERT INTO b VALUES (10, 'before')", *BAD_TXN])
    for _ in range(2):  # a re-run stops at the same change: it is never skipped
        with pytest.raises(TaskError, match=r"public\.a.*NaN"):
            _run(pg_db, mysql_target_db, tmp_path, DataErrorPolicy="STOP_TASK")
        assert table_rows(mysql_target_db, "a", "id") == [(0, 0.5)]  # no part of the txn
        assert [r[0] for r in table_rows(mysql_target_db, "b", "id")] == [10]
    store = StateStore(tmp_path / "state.db")
    record = store.task("errs")
    assert record is not None and record.status.value == "failed" and "NaN" in record.stop_reason
    assert _stats(store)["a"].state is TableState.ERROR


def test_escalation_suspends_the_table_after_the_count(
    pg_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    _pg_source(pg_db)
    settings = {"DataErrorPolicy": "LOG_ERROR", "DataErrorEscalationCount": 2}
    _run(pg_db, mysql_target_db, tmp_path, **settings)
    execute(
        pg_db,
        [f"INSERT INTO a VALUES ({i}, '{'NaN' if i % 2 else i}')" for i in range(1, 8)]
        + ["INSERT INTO b VALUES (1, 'b goes on')"],
    )
    store = _run(pg_db, mysql_target_db, tmp_path, **settings)
    # rows 1 and 3 are logged; the second error suspends the table: 4.. are not applied
    assert [r[0] for r in table_rows(mysql_target_db, "a", "id")] == [0, 2]
    assert [e[1] for e in store.data_errors("errs")] == ["id=1", "id=3"]
    assert table_rows(mysql_target_db, "b", "id") == [(1, "b goes on")]
    a = _stats(store)["a"]
    assert a.state is TableState.ERROR and "DataErrorEscalationCount 2" in a.error


def test_text_with_nul_into_postgres_is_a_data_error(pg_target_db: str, tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    execute(
        src, ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a')"]
    )
    _run(src, pg_target_db, tmp_path)
    execute(
        src,
        [
            "INSERT INTO t VALUES (2, 'x' || char(0) || 'y')",
            "INSERT INTO t VALUES (3, 'fine')",
            "UPDATE t SET v = 'changed' WHERE id = 1",
        ],
    )
    store = _run(src, pg_target_db, tmp_path)
    assert table_rows(pg_target_db, "t", "id") == [(1, "changed"), (3, "fine")]
    errors = store.data_errors("errs")
    assert len(errors) == 1 and errors[0][1] == "id=2" and "NUL" in errors[0][3], errors


@pytest.mark.parametrize("policy", ["SUSPEND_TABLE", "STOP_TASK"])
def test_a_dropped_target_table_is_a_table_error(
    pg_db: str, pg_target_db: str, tmp_path: Path, policy: str
) -> None:
    _pg_source(pg_db)
    _run(pg_db, pg_target_db, tmp_path, TableErrorPolicy=policy)
    execute(pg_target_db, ["DROP TABLE public.b"])
    execute(pg_db, ["INSERT INTO a VALUES (1, 1.5)", "INSERT INTO b VALUES (1, 'x')"])
    if policy == "STOP_TASK":
        with pytest.raises(TaskError, match=r"public\.b"):
            _run(pg_db, pg_target_db, tmp_path, TableErrorPolicy=policy)
        return
    store = _run(pg_db, pg_target_db, tmp_path, TableErrorPolicy=policy)
    assert table_rows(pg_target_db, "a", "id") == [(0, 0.5), (1, 1.5)]
    b = _stats(store)["b"]
    assert b.state is TableState.ERROR and b.error.startswith("suspended: ") and "b" in b.error


# -- the same policies during the full load -----------------------------------------------


def _lite_source(tmp_path: Path) -> str:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    rows = ", ".join(f"({i}, {'NULL' if i % 3 else repr('x' * i)})" for i in range(1, 31))
    execute(
        src,
        [
            "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER)",
            "INSERT INTO a VALUES "
            + ", ".join(f"({i}, {i if i % 10 else repr('bad')})" for i in range(1, 31)),
            "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)",
            "INSERT INTO b VALUES " + rows,
        ],
    )
    return src


def _full_load(src: str, target: str, tmp_path: Path, **behavior: Any) -> StateStore:
    spec = task_from_dict(
        {
            "name": "errs",
            "source": src,
            "target": target,
            "task_settings": {
                "ErrorBehavior": behavior,
                "FullLoadSettings": {"MaxFullLoadSubTasks": 1, "CommitRate": 5},
            },
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    return store


def test_full_load_escalation_count_fails_the_table(tmp_path: Path) -> None:
    """Table a has three values an integer column cannot hold (ids 10, 20, 30)."""
    src = _lite_source(tmp_path)
    store = _full_load(src, f"file://{tmp_path}/lake1", tmp_path, DataErrorEscalationCount=5)
    assert _stats(store)["a"].error_rows == 3 and _stats(store)["a"].state is TableState.COMPLETED
    with pytest.raises(TaskError, match=r"main\.a.*DataErrorEscalationCount 2"):
        _full_load(src, f"file://{tmp_path}/lake2", tmp_path, DataErrorEscalationCount=2)
    stats = _stats(StateStore(tmp_path / "state.db"))
    assert stats["a"].state is TableState.ERROR and stats["b"].state is TableState.COMPLETED


def test_full_load_table_error_policy_stop_task(tmp_path: Path) -> None:
    src = _lite_source(tmp_path)
    behavior = {"DataErrorPolicy": "SUSPEND_TABLE", "TableErrorPolicy": "STOP_TASK"}
    with pytest.raises(TaskError, match=r"main\.a"):
        _full_load(src, f"file://{tmp_path}/lake", tmp_path, **behavior)
    stats = _stats(StateStore(tmp_path / "state.db"))
    assert stats["a"].state is TableState.ERROR
    assert stats["b"].state is TableState.CANCELLED  # the task stopped: b never loaded


@pytest.mark.parametrize("policy", ["LOG_ERROR", "SUSPEND_TABLE", "STOP_TASK"])
def test_apply_conflicts_escalate_after_the_count(
    pg_db: str, pg_target_db: str, tmp_path: Path, policy: str
) -> None:
    """Three updates of rows missing on the target (ApplyErrorUpdatePolicy LOG_ERROR skips
    and records each, also on the PostgreSQL fast path); ApplyErrorEscalationCount 2
    escalates by ApplyErrorEscalationPolicy from the batch that reached the count on."""
    execute(pg_db, ["CREATE TABLE b (id int PRIMARY KEY, v text)"])
    execute(pg_db, ["INSERT INTO b SELECT g, 'v' FROM generate_series(1, 3) g"])
    behavior = {"ApplyErrorEscalationCount": 2, "ApplyErrorEscalationPolicy": policy}
    _run(pg_db, pg_target_db, tmp_path, **behavior)
    execute(pg_target_db, ["DELETE FROM b"])  # the target loses its rows behind the task's back
    execute(pg_db, [f"UPDATE b SET v = 'u{i}' WHERE id = {i}" for i in (1, 2, 3)])
    if policy == "STOP_TASK":
        with pytest.raises(TaskError, match="ApplyErrorEscalationCount 2 reached"):
            _run(pg_db, pg_target_db, tmp_path, **behavior)
        return
    store = _run(pg_db, pg_target_db, tmp_path, **behavior)
    errors = [reason for _, _, _, reason in store.data_errors("errs")]
    assert all(e == "apply update: no such row on the target (LOG_ERROR)" for e in errors)
    # LOG_ERROR goes on: all three are recorded. SUSPEND_TABLE suspends the table after the
    # batch that reached two; the third update is recorded only if it was in that batch.
    assert len(errors) == 3 if policy == "LOG_ERROR" else len(errors) in (2, 3)
    execute(pg_db, ["INSERT INTO b VALUES (4, 'after')"])
    store = _run(pg_db, pg_target_db, tmp_path, **behavior)
    if policy == "LOG_ERROR":
        assert table_rows(pg_target_db, "b", "id") == [(4, "after")]
        assert _stats(store)["b"].state is not TableState.ERROR
    else:
        assert table_rows(pg_target_db, "b", "id") == []  # suspended: the insert is not applied
        assert _stats(store)["b"].state is TableState.ERROR


def test_apply_insert_policy_suspend_table_is_recorded_on_a_row_target(tmp_path: Path) -> None:
    """ApplyErrorInsertPolicy SUSPEND_TABLE on a SQLite target (the shared row applier):
    the conflicting table is suspended in the task's table statistics, as on PostgreSQL,
    and the other table goes on."""
    import sqlite3

    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with sqlite3.connect(src) as conn:
        conn.executescript(
            "CREATE TABLE a (id integer PRIMARY KEY, v text);"
            "CREATE TABLE b (id integer PRIMARY KEY, v text);"
            "INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'x');"
        )
    settings = {
        "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
        "ErrorBehavior": {"ApplyErrorInsertPolicy": "SUSPEND_TABLE"},
    }
    spec = task_from_dict(
        {
            "name": "suspend",
            "source": f"sqlite:///{src}",
            "target": f"sqlite:///{dst}",
            "migration_type": "full-load-and-cdc",
            "task_settings": settings,
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)  # full load, caught up
    with sqlite3.connect(dst) as conn:
        conn.execute("INSERT INTO a VALUES (50, 'already here')")
    with sqlite3.connect(src) as conn:
        conn.execute("INSERT INTO a VALUES (50, 'from source'), (51, 'next')")
        conn.execute("INSERT INTO b VALUES (2, 'y')")
    run_task(spec, store)
    states = {t.name: t for t in store.tables("suspend")}
    assert states["a"].state is TableState.ERROR
    assert "suspended" in states["a"].error and "SUSPEND_TABLE" in states["a"].error
    assert states["b"].state is not TableState.ERROR
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT id, v FROM a ORDER BY id").fetchall() == [
            (1, "x"),
            (50, "already here"),
        ]
        assert conn.execute("SELECT id FROM b ORDER BY id").fetchall() == [(1,), (2,)]
