"""PostgreSQL -> PostgreSQL change data capture: the target equals the source, row for row."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.service.run import RunOptions, run_task
from opendms.state import StateStore, TaskStatus
from tests.waiting import wait_until

SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2), doc text,
                       tags text[], seen timestamptz);
CREATE TABLE events (id bigint, kind text, at timestamp);
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE scratch (id int PRIMARY KEY, v text);
INSERT INTO accounts SELECT g, 'name ' || g, g * 1.5,
  CASE WHEN g % 100 = 0
       THEN (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300)) END,
  ARRAY['a', g::text], timestamptz '2024-01-01 00:00+00' + g * interval '1 hour'
  FROM generate_series(1, 1000) g;
INSERT INTO events SELECT g, 'k' || (g % 3), timestamp '2024-01-01' + g * interval '1 day'
  FROM generate_series(1, 50) g;
INSERT INTO scratch SELECT g, 'x' FROM generate_series(1, 10) g;
"""

TABLES = {"accounts": "id", "events": "id, kind, at", "scratch": "id"}


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {TABLES[table]}").fetchall()


def _same(source: str, target: str) -> None:
    for table in TABLES:
        assert _rows(target, table) == _rows(source, table), table


def _spec(source: str, target: str, name: str = "cdc") -> Any:
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
        },
        where="test",
    )


def _run(source: str, target: str, tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    run_task(_spec(source, target), store)
    return store


@pytest.fixture
def source(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SETUP)
    return pg_db


CHANGES = [
    "INSERT INTO accounts VALUES (2001, 'new', 10, NULL, '{}', now())",
    "UPDATE accounts SET balance = balance + 1 WHERE id <= 100",
    "UPDATE accounts SET name = 'toast untouched' WHERE id = 100",  # doc is TOASTed, unchanged
    "UPDATE accounts SET id = 5000 WHERE id = 7",  # primary key change
    "DELETE FROM accounts WHERE id BETWEEN 200 AND 250",
    "UPDATE accounts SET name = NULL, tags = NULL WHERE id = 300",
    "UPDATE events SET kind = 'changed' WHERE id = 3",  # replica identity full
    "DELETE FROM events WHERE id = 4",
    "TRUNCATE scratch",
    "INSERT INTO scratch VALUES (1, 'after truncate')",
]


def test_full_load_then_changes(source: str, pg_target_db: str, tmp_path: Path) -> None:
    store = _run(source, pg_target_db, tmp_path)
    _same(source, pg_target_db)
    with psycopg.connect(source, autocommit=True) as conn:
        for sql in CHANGES:
            conn.execute(sql)
        with conn.transaction():  # one multi-statement transaction
            conn.execute("INSERT INTO accounts VALUES (3001, 'tx', 1, NULL, NULL, NULL)")
            conn.execute("UPDATE accounts SET balance = 0 WHERE id = 3001")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO accounts VALUES (4001, 'rolled back', 1, NULL, NULL, NULL)")
        conn.execute("ROLLBACK")
    store = _run(source, pg_target_db, tmp_path)
    _same(source, pg_target_db)
    counts = store.change_counts("cdc")
    assert counts["public.accounts"][0] == 2  # inserts: 2001, 3001
    assert counts["public.scratch"][3] == 1  # one truncate
    task = store.task("cdc")
    assert task is not None and task.status is TaskStatus.STOPPED
    assert task.stop_reason == "CAUGHT_UP"


def test_writes_during_full_load_are_neither_lost_nor_doubled(
    source: str, pg_target_db: str, tmp_path: Path
) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts SELECT g, 'bulk', g FROM generate_series(10001, 60000) g"
        )
    done = threading.Event()
    written = [0]

    def writer() -> None:
        with psycopg.connect(source, autocommit=True) as conn:
            i = 100_000
            while not done.is_set():
                conn.execute("INSERT INTO accounts (id, name) VALUES (%s, 'live')", (i,))
                conn.execute(
                    "UPDATE accounts SET balance = balance + 1 WHERE id = %s", (i % 900 + 1,)
                )
                i += 1
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        _run(source, pg_target_db, tmp_path)
        after = written[0]  # writes after the first run, for the second run to catch up:
        wait_until(lambda: written[0] >= after + 50, 30, "50 writes after the first run")
    finally:
        done.set()
        thread.join()
    _run(source, pg_target_db, tmp_path)
    _same(source, pg_target_db)


def test_resume_after_stop_keeps_position(source: str, pg_target_db: str, tmp_path: Path) -> None:
    _run(source, pg_target_db, tmp_path)
    position = "SELECT position FROM opendms.checkpoints WHERE task='cdc'"
    with psycopg.connect(pg_target_db) as conn:
        first = conn.execute(position).fetchone()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET name = 'second run' WHERE id = 1")
    _run(source, pg_target_db, tmp_path)
    with psycopg.connect(pg_target_db) as conn:
        second = conn.execute(
            "SELECT position FROM opendms.checkpoints WHERE task='cdc'"
        ).fetchone()
        name = conn.execute("SELECT name FROM accounts WHERE id = 1").fetchone()
    assert first is not None and second is not None and first != second
    assert name == ("second run",)
    _same(source, pg_target_db)


def test_dropped_slot_fails_clearly(source: str, pg_target_db: str, tmp_path: Path) -> None:
    from opendms.errors import TaskError

    _run(source, pg_target_db, tmp_path)
    with psycopg.connect(pg_target_db) as conn:
        saved = conn.execute("SELECT position FROM opendms.checkpoints WHERE task='cdc'").fetchone()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot('opendms_cdc')")
        conn.execute("UPDATE accounts SET name = 'while slot was gone' WHERE id = 2")
    assert saved is not None
    with pytest.raises(TaskError, match=rf"slot 'opendms_cdc' is gone.*{saved[0]}"):
        _run(source, pg_target_db, tmp_path)
    store = StateStore(tmp_path / "state.db")
    task = store.task("cdc")
    assert task is not None and task.status is TaskStatus.FAILED
    run_task(_spec(source, pg_target_db), store, RunOptions(fresh=True))
    _same(source, pg_target_db)


def test_table_statistics_show_changes(source: str, pg_target_db: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from opendms.cli.main import cli

    _run(source, pg_target_db, tmp_path)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET balance = 0 WHERE id <= 5")
        conn.execute("DELETE FROM accounts WHERE id = 6")
    _run(source, pg_target_db, tmp_path)
    args = ["--state", str(tmp_path / "state.db"), "task", "tables", "--json", "cdc"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    (stats,) = [t for t in json.loads(out.output) if t["TableName"] == "accounts"]
    assert (stats["SchemaName"], stats["TableState"]) == ("public", "Table completed")
    assert (stats["Inserts"], stats["Updates"], stats["Deletes"]) == (0, 5, 1)


def test_delete_with_the_task_file_drops_slot_and_publication(
    source: str, pg_target_db: str, tmp_path: Path
) -> None:
    import yaml
    from click.testing import CliRunner

    from opendms.cli.main import cli

    _run(source, pg_target_db, tmp_path)
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "cdc",
                "source": source,
                "target": pg_target_db,
                "migration_type": "full-load-and-cdc",
            }
        )
    )
    state = ["--state", str(tmp_path / "state.db")]
    out = CliRunner().invoke(cli, [*state, "task", "delete", "cdc", "--file", str(task)])
    assert out.exit_code == 0, out.output
    with psycopg.connect(source) as conn:
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
        pubs = conn.execute("SELECT count(*) FROM pg_publication").fetchone()
    assert slots == (0,) and pubs == (0,)


def test_status_reports_phase_and_metrics(source: str, pg_target_db: str, tmp_path: Path) -> None:
    store = _run(source, pg_target_db, tmp_path)
    task = store.task("cdc")
    assert task is not None
    assert task.phase == "ongoing replication"
    assert task.metrics["incoming_changes"] == 0


def _slot_confirmed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = 'opendms_cdc'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_idle_slot_confirms_wal_of_other_tables(
    source: str, pg_target_db: str, tmp_path: Path
) -> None:
    """Writes only to tables outside the task must not make the slot hold WAL."""
    store = _run(source, pg_target_db, tmp_path)
    before = _slot_confirmed(source)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE other (id int PRIMARY KEY, v text)")
        conn.execute(
            "INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g"
        )
    stop = threading.Event()
    runner = threading.Thread(
        target=run_task,
        args=(_spec(source, pg_target_db), store, RunOptions(stop=stop, follow=True)),
    )
    runner.start()
    try:
        wait_until(  # moved past the other table's WAL
            lambda: _slot_confirmed(source) > before + 1_000_000,
            30,
            "the slot's confirmed_flush_lsn to pass the other table's WAL",
            0.5,
        )
    finally:
        stop.set()
        runner.join(60)
    _same(source, pg_target_db)


def test_stop_position_by_commit_time(source: str, pg_target_db: str, tmp_path: Path) -> None:
    store = _run(source, pg_target_db, tmp_path)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET name = 'before' WHERE id = 1")
        cut = _one(conn, "SELECT now()")
        wait_until(  # the next commit is stamped after the cut
            lambda: _one(conn, "SELECT clock_timestamp() > %s", cut),
            10,
            "the server clock to pass the stop position",
        )
        conn.execute("UPDATE accounts SET name = 'after' WHERE id = 2")
    spec = _spec(source, pg_target_db).model_copy(
        update={"cdc_stop_position": f"commit_time:{cut.isoformat()}"}
    )
    run_task(spec, store)
    names = dict(_rows_by_id(pg_target_db))
    assert names[1] == "before" and names[2] == "name 2"
    task = store.task("cdc")
    assert task is not None and task.stop_reason == "STOP_POSITION_REACHED"
    run_task(_spec(source, pg_target_db), store)  # without a stop position it goes on
    assert dict(_rows_by_id(pg_target_db))[2] == "after"


def _one(conn: psycopg.Connection[Any], sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args or None).fetchone()
    assert row is not None, sql
    return row[0]


def _rows_by_id(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, name FROM accounts WHERE id <= 2 ORDER BY id").fetchall()


RULES = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "p",
            "object-locator": {"schema-name": "public", "table-name": "products"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "category",
                    "filter-conditions": [{"filter-operator": "noteq", "value": "Discontinued"}],
                }
            ],
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "drop-secret",
            "rule-target": "column",
            "object-locator": {
                "schema-name": "public",
                "table-name": "products",
                "column-name": "secret",
            },
            "rule-action": "remove-column",
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "total",
            "rule-target": "column",
            "object-locator": {"schema-name": "public", "table-name": "products"},
            "rule-action": "add-column",
            "value": "total",
            "expression": "$price * $qty",
            "data-type": {"type": "numeric", "precision": 12, "scale": 2},
        },
    ]
}


def test_mapping_rules_apply_to_changes(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """Filters, removed and added columns: the target equals a fresh full load."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE products (id int PRIMARY KEY, category text, price numeric(10,2), "
            "qty int, secret text)"
        )
        conn.execute(
            "INSERT INTO products SELECT g, CASE WHEN g % 4 = 0 THEN 'Discontinued' ELSE 'A' END,"
            " g * 1.25, g, 's' FROM generate_series(1, 40) g"
        )
    spec = _spec(pg_db, pg_target_db, "rules").model_copy(update={"table_mappings": RULES})
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO products VALUES (41, 'A', 2.50, 3, 's'), (44, 'Discontinued', 1, 1, 's')"
        )
        conn.execute("UPDATE products SET category = 'B' WHERE id = 4")  # into the filter
        conn.execute("UPDATE products SET category = 'Discontinued' WHERE id = 5")  # out of it
        conn.execute("UPDATE products SET price = 10.00 WHERE id = 6")  # total follows
        conn.execute("UPDATE products SET price = 99 WHERE id = 8")  # stays filtered out
        conn.execute("DELETE FROM products WHERE id IN (7, 12)")
    run_task(spec, store)
    with psycopg.connect(pg_db) as conn:
        expected = conn.execute(
            "SELECT id, category, price, qty, (price * qty)::numeric(12,2) FROM products "
            "WHERE category <> 'Discontinued' ORDER BY id"
        ).fetchall()
    with psycopg.connect(pg_target_db) as conn:
        got = conn.execute(
            "SELECT id, category, price, qty, total FROM products ORDER BY id"
        ).fetchall()
        columns = [d.name for d in conn.execute("SELECT * FROM products LIMIT 0").description or []]
    assert got == expected
    assert "secret" not in columns and (6, "A", 10, 6, 60) in [
        (r[0], r[1], r[2], r[3], r[4]) for r in got
    ]


@pytest.mark.parametrize("policy", ["LOG_ERROR", "INSERT_RECORD", "STOP_TASK"])
def test_apply_error_insert_policy(
    source: str, pg_target_db: str, tmp_path: Path, policy: str
) -> None:
    """A change that conflicts with the target follows ApplyErrorInsertPolicy."""
    store = _run(source, pg_target_db, tmp_path)
    with psycopg.connect(pg_target_db, autocommit=True) as conn:
        conn.execute("INSERT INTO scratch VALUES (50, 'already here')")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("INSERT INTO scratch VALUES (50, 'from source'), (51, 'next')")
        conn.execute("UPDATE scratch SET v = 'y' WHERE id = 1")
    settings = {
        "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
        "ErrorBehavior": {"ApplyErrorInsertPolicy": policy},
    }
    spec = _spec(source, pg_target_db).model_dump(by_alias=True)
    spec = task_from_dict({**spec, "task_settings": settings}, where="test")
    if policy == "STOP_TASK":
        with pytest.raises(Exception, match=r"scratch: insert of row .*50"):
            run_task(spec, store)
        return
    run_task(spec, store)
    with psycopg.connect(pg_target_db) as conn:
        rows: dict[int, str] = dict(
            conn.execute("SELECT id, v FROM scratch WHERE id IN (1, 50, 51)").fetchall()
        )
    assert rows[1] == "y" and rows[51] == "next"
    assert rows[50] == ("from source" if policy == "INSERT_RECORD" else "already here")
    errors = store.data_errors("cdc")
    assert len(errors) == (1 if policy == "LOG_ERROR" else 0)


def test_long_runs_are_staged(
    source: str, pg_target_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs over STAGE_MIN changes go through COPY (insert, update by key, delete) and
    still equal the source; a key-changing run and unchanged TOAST values are kept."""
    from opendms.endpoints.postgres import apply, stage
    from opendms.endpoints.postgres.stage import STAGE_MIN

    used: list[tuple[str, bool]] = []

    def counting(cur: Any, tmap: Any, changes: list[Any], strict: Any = frozenset()) -> bool:
        done = stage.staged(cur, tmap, changes, strict)
        used.append((changes[0].op.value, done))
        return done

    monkeypatch.setattr(apply, "staged", counting)

    store = _run(source, pg_target_db, tmp_path)
    n = 3 * STAGE_MIN
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO accounts (id, name, balance) SELECT g, 'bulk', g FROM "
            f"generate_series(10001, {10000 + n}) g"
        )
        conn.execute("UPDATE accounts SET balance = balance * 2, name = name || '!'")
        conn.execute("UPDATE accounts SET balance = balance + 1")  # TOASTed docs unchanged
        conn.execute(f"UPDATE accounts SET id = id + 100000 WHERE id > {10000 + n // 2}")
        conn.execute("DELETE FROM accounts WHERE id > 10000 AND id % 2 = 0")
        conn.execute("UPDATE accounts SET balance = 0 WHERE id = 1")
    run_task(_spec(source, pg_target_db), store)
    _same(source, pg_target_db)
    assert {("I", True), ("U", True), ("D", True), ("U", False)} <= set(used)


def test_cdc_start_position_before_the_slot_is_refused(
    source: str, pg_target_db: str, tmp_path: Path
) -> None:
    """A new slot cannot read the past: an earlier CdcStartPosition is an error, never a
    silent skip."""
    from opendms.errors import ConfigError

    with psycopg.connect(source) as conn:
        past = _one(conn, "SELECT pg_current_wal_lsn()::text")
        conn.execute("UPDATE accounts SET name = 'x' WHERE id = 1")
    spec = task_from_dict(
        {
            "name": "past",
            "source": source,
            "target": pg_target_db,
            "migration_type": "cdc",
            "CdcStartPosition": past,
        },
        where="test",
    )
    with pytest.raises(ConfigError, match=rf"CdcStartPosition {past} is before"):
        run_task(spec, StateStore(tmp_path / "state.db"))
