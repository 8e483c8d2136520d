"""An add-column result longer than its string(n) is truncated (SQLite -> SQLite full
load): DataTruncationErrorPolicy decides what else happens."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.errors import TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState

RULES = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "1",
            "object-locator": {"schema-name": "main", "table-name": "people"},
            "rule-action": "include",
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "2",
            "rule-action": "add-column",
            "rule-target": "column",
            "object-locator": {"schema-name": "main", "table-name": "people"},
            "value": "FULL_NAME",
            "expression": "$FIRST_NAME||'_'||$LAST_NAME",
            "data-type": {"type": "string", "length": 8},
        },
    ]
}


def _run(tmp_path: Path, policy: str) -> tuple[StateStore, str]:
    source = tmp_path / "s.db"
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, FIRST_NAME TEXT, LAST_NAME TEXT)")
        con.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [(1, "Al", "Bo"), (2, "Alexandra", "Smith"), (3, "Jo", "Li")],
        )
    target = tmp_path / "t.db"
    spec = task_from_dict(
        {
            "name": "trunc",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{target}",
            "migration_type": "full-load",
            "table_mappings": RULES,
            "task_settings": {"ErrorBehavior": {"DataTruncationErrorPolicy": policy}},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    return store, str(target)


def _rows(target: str) -> list[Any]:
    with sqlite3.connect(target) as con:
        return con.execute("SELECT id, FULL_NAME FROM people ORDER BY id").fetchall()


def test_log_error_loads_the_truncated_value_and_records_it(tmp_path: Path) -> None:
    store, target = _run(tmp_path, "LOG_ERROR")
    assert _rows(target) == [(1, "Al_Bo"), (2, "Alexandr"), (3, "Jo_Li")]
    errors = store.data_errors("trunc")
    assert [(key, col) for _, key, col, _ in errors] == [("id=2", "FULL_NAME")]
    assert "truncated to 8 characters" in errors[0][3]
    assert store.tables("trunc")[0].state is TableState.COMPLETED


def test_ignore_record_skips_the_row_without_recording_it(tmp_path: Path) -> None:
    store, target = _run(tmp_path, "IGNORE_RECORD")
    assert _rows(target) == [(1, "Al_Bo"), (3, "Jo_Li")]
    assert store.data_errors("trunc") == []
    assert store.tables("trunc")[0].error_rows == 1


@pytest.mark.parametrize("policy", ["SUSPEND_TABLE", "STOP_TASK"])
def test_suspend_or_stop_fails_the_table(tmp_path: Path, policy: str) -> None:
    with pytest.raises(TaskError, match="FULL_NAME"):
        _run(tmp_path, policy)
    stats = StateStore(tmp_path / "state.db").tables("trunc")[0]
    assert stats.state is TableState.ERROR and "truncated" in stats.error


def _cdc(tmp_path: Path, policy: str) -> tuple[Any, StateStore, Path, Path]:
    """A full-load-and-cdc task whose load truncates nothing; the CDC changes that follow
    insert a row whose expression result is too long, then a short one."""
    source, target = tmp_path / "s.db", tmp_path / "t.db"
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, FIRST_NAME TEXT, LAST_NAME TEXT)")
        con.execute("INSERT INTO people VALUES (1, 'Al', 'Bo')")
    spec = task_from_dict(
        {
            "name": "trunc",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{target}",
            "migration_type": "full-load-and-cdc",
            "table_mappings": RULES,
            "task_settings": {"ErrorBehavior": {"DataTruncationErrorPolicy": policy}},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with sqlite3.connect(source) as con:
        con.execute("INSERT INTO people VALUES (2, 'Alexandra', 'Smith')")
        con.execute("INSERT INTO people VALUES (3, 'Jo', 'Li')")
    return spec, store, source, target


@pytest.mark.parametrize(
    ("policy", "rows"),
    [
        ("LOG_ERROR", [(1, "Al_Bo"), (2, "Alexandr"), (3, "Jo_Li")]),
        ("IGNORE_RECORD", [(1, "Al_Bo"), (3, "Jo_Li")]),
        ("SUSPEND_TABLE", [(1, "Al_Bo")]),
    ],
)
def test_cdc_truncation_follows_the_policy(
    tmp_path: Path, policy: str, rows: list[tuple[int, str]]
) -> None:
    spec, store, _, target = _cdc(tmp_path, policy)
    run_task(spec, store)
    assert _rows(str(target)) == rows
    errors = [(key, col) for _, key, col, _ in store.data_errors("trunc")]
    assert errors == ([] if policy == "IGNORE_RECORD" else [("id=2", "FULL_NAME")])
    stats = store.tables("trunc")[0]
    assert (stats.state is TableState.ERROR) == (policy == "SUSPEND_TABLE")


def test_cdc_truncation_stop_task_stops_at_the_row_every_time(tmp_path: Path) -> None:
    spec, store, _, target = _cdc(tmp_path, "STOP_TASK")
    for _ in range(2):  # the checkpoint stays before the row: a re-run stops there again
        with pytest.raises(TaskError, match="FULL_NAME"):
            run_task(spec, store)
        assert _rows(str(target)) == [(1, "Al_Bo")]
