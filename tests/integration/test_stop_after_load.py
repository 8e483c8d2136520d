"""FullLoadSettings StopTaskCachedChangesNotApplied / StopTaskCachedChangesApplied (DMS
guide, "Full-load task settings"): a full-load-and-cdc task stops after its full load,
before or after applying the changes cached during it, and a resumed run goes on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg

from opendms.config import task_from_dict
from opendms.service.run import RunOptions, run_task
from opendms.state import StateStore
from tests.oracles.rows import read_postgres

SETUP = """
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g;
"""


def _spec(source: str, target: str, **full_load: bool) -> Any:
    return task_from_dict(
        {
            "name": "stopper",
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"FullLoadSettings": full_load},
        },
        where="test",
    )


def _rows(url: str) -> list[tuple[Any, ...]]:
    return [(r["id"], r["v"]) for r in read_postgres(url, "t")]


def _source(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SETUP)
    return url


def test_not_applied_stops_after_the_load_and_resume_applies_the_changes(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    source, store = _source(pg_db), StateStore(tmp_path / "state.db")
    spec = _spec(source, pg_target_db, StopTaskCachedChangesNotApplied=True)
    run_task(spec, store)
    record = store.task("stopper")
    assert record is not None and record.stop_reason == "STOPPED_AFTER_FULL_LOAD"
    assert _rows(pg_target_db) == [(1, "v1"), (2, "v2"), (3, "v3")]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE t SET v = 'changed' WHERE id = 2")
        conn.execute("INSERT INTO t VALUES (4, 'v4')")
    assert _rows(pg_target_db) == [(1, "v1"), (2, "v2"), (3, "v3")]
    run_task(spec, store)  # a resumed run does not stop again: it applies the changes
    record = store.task("stopper")
    assert record is not None and record.stop_reason == "CAUGHT_UP"
    assert _rows(pg_target_db) == _rows(source) == [(1, "v1"), (2, "changed"), (3, "v3"), (4, "v4")]


def test_applied_stops_a_following_task_once_the_cached_changes_are_applied(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    source, store = _source(pg_db), StateStore(tmp_path / "state.db")
    spec = _spec(source, pg_target_db, StopTaskCachedChangesApplied=True)
    stop = threading.Event()
    runner = threading.Thread(
        target=run_task, args=(spec, store, RunOptions(stop=stop, follow=True))
    )
    runner.start()
    runner.join(timeout=120)
    alive = runner.is_alive()
    stop.set()  # a task that did not stop by itself is stopped here, and the test fails
    runner.join()
    assert not alive, "the task did not stop after the cached changes"
    record = store.task("stopper")
    assert record is not None and record.stop_reason == "STOPPED_AFTER_CACHED_EVENTS"
    assert _rows(pg_target_db) == _rows(source)
