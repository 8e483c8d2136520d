"""Rows a source cannot decode during CDC are data errors (issue 8, section 1): the task's
DataErrorPolicy decides for each such row, the good rows of the same statement and
transaction arrive, and the task never sticks on the bad row.

MariaDB stores values its binlog carries but no other engine can hold when ``sql_mode``
allows them: zero dates, invalid dates (ALLOW_INVALID_DATES), BIT(64) values beyond a
signed 64-bit integer, bytes invalid in an ``ascii`` column."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendms.endpoints.mysql.binlog.events import ZERO_DATE
from opendms.errors import TaskError
from opendms.state import StateStore, TableState
from tests.integration.test_cdc_errors import _run, _stats
from tests.support.sql import execute, table_rows

SOURCE = [
    "CREATE TABLE a (id INT PRIMARY KEY, d DATE, b BIT(64), t VARCHAR(10) CHARACTER SET ascii,"
    " l VARCHAR(10) CHARACTER SET latin1)",
    "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(20))",
    "INSERT INTO a VALUES (0, '2024-01-01', 0, 'zero', 'zero')",
]
BAD_TXN = [
    "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
    "START TRANSACTION",
    "INSERT INTO a VALUES (1, '2024-01-01', 1, 'one', X'4181'),"  # latin1 0x81 is valid
    " (2, '0000-00-00', 2, 'two', 'two'), (3, '2024-01-03', 3, 'three', 'three'),"
    " (4, '2024-02-30', 4, 'four', 'four'), (5, '2024-01-05', b'1' << 63, 'five', 'five'),"
    " (6, '2024-01-06', 6, X'41FF42', 'six'), (7, '2024-01-07', 7, 'seven', 'seven')",
    "INSERT INTO other VALUES (1, 'in the same transaction')",
    "COMMIT",
    "INSERT INTO other VALUES (2, 'after')",
]
LATER = ["INSERT INTO a VALUES (8, '2024-01-08', 8, 'eight', 'eight')"]
LOGGED = [
    ("id=2", "d", f"insert: table {{db}}.a: column d: {ZERO_DATE}"),
    ("id=4", "d", "insert: table {db}.a: column d: invalid date (day is out of range for month)"),
    ("id=5", "b", f"insert: table {{db}}.a: column b: BIT value {1 << 63} does not fit a 64-bit"),
    ("id=6", "t", "insert: table {db}.a: column t: text is not valid ascii (ordinal not in rang"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_target_db")
        return url
    return f"sqlite:///{tmp_path / 'target.db'}"


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _ids(url: str, table: str) -> list[int]:
    return [r[0] for r in table_rows(url, table, "id")]


def test_log_error_records_each_bad_row_and_the_good_rows_arrive(
    mysql_db: str, target: str, tmp_path: Path
) -> None:
    execute(mysql_db, SOURCE)
    _run(mysql_db, target, tmp_path, DataErrorPolicy="LOG_ERROR")
    execute(mysql_db, BAD_TXN)
    store = _run(mysql_db, target, tmp_path, DataErrorPolicy="LOG_ERROR")
    assert _ids(target, "a") == [0, 1, 3, 7]
    assert [r[4] for r in table_rows(target, "a", "id")][:2] == ["zero", "A\x81"]
    assert _ids(target, "other") == [1, 2]
    db = _db(mysql_db)
    errors = store.data_errors("errs")
    assert [e[0] for e in errors] == [f"{db}.a"] * 4
    assert [(e[1], e[2]) for e in errors] == [(k, c) for k, c, _ in LOGGED]
    for (_table, _key, _column, reason), (_k, _c, expected) in zip(errors, LOGGED, strict=True):
        assert reason.startswith(expected.format(db=db)), reason
    values = store.data_error_values("errs")
    assert values[0] == "id=2, d=0000-00-00, b=2, t=two, l=two"
    assert "d=2024-02-30" in values[1] and f"b={1 << 63}" in values[2]
    a = _stats(store)["a"]
    assert (a.state, a.error_rows) == (TableState.COMPLETED, 4)
    execute(mysql_db, LATER)  # the task goes on streaming
    store = _run(mysql_db, target, tmp_path, DataErrorPolicy="LOG_ERROR")
    assert _ids(target, "a") == [0, 1, 3, 7, 8]
    assert len(store.data_errors("errs")) == 4


def test_suspend_table_suspends_only_that_table(mysql_db: str, target: str, tmp_path: Path) -> None:
    execute(mysql_db, SOURCE)
    _run(mysql_db, target, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    execute(mysql_db, BAD_TXN)
    store = _run(mysql_db, target, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    # the good row before the bad one is applied, nothing of the table from the bad row on
    assert _ids(target, "a") == [0, 1]
    assert _ids(target, "other") == [1, 2]
    a = _stats(store)["a"]
    assert a.state is TableState.ERROR and a.error.startswith("suspended: ")
    assert ZERO_DATE in a.error and "column d" in a.error
    assert [(e[1], e[2]) for e in store.data_errors("errs")] == [("id=2", "d")]
    execute(mysql_db, [*LATER, "INSERT INTO other VALUES (3, 'later')"])
    store = _run(mysql_db, target, tmp_path, DataErrorPolicy="SUSPEND_TABLE")
    assert _ids(target, "a") == [0, 1]  # still suspended
    assert _ids(target, "other") == [1, 2, 3]
    assert _stats(store)["a"].state is TableState.ERROR


def test_stop_task_stops_at_the_row_every_time(mysql_db: str, target: str, tmp_path: Path) -> None:
    execute(mysql_db, SOURCE)
    _run(mysql_db, target, tmp_path, DataErrorPolicy="STOP_TASK")
    execute(mysql_db, ["INSERT INTO other VALUES (10, 'before')", *BAD_TXN])
    for _ in range(2):  # a re-run stops at the same row: it is never skipped
        with pytest.raises(TaskError, match=rf"{_db(mysql_db)}\.a.*column d: MySQL zero date"):
            _run(mysql_db, target, tmp_path, DataErrorPolicy="STOP_TASK")
        assert _ids(target, "a") == [0]  # no part of the transaction
        assert _ids(target, "other") == [10]  # the transaction before it is applied
    store = StateStore(tmp_path / "state.db")
    record = store.task("errs")
    assert record is not None and record.status.value == "failed"
    assert "id=2" in record.stop_reason and ZERO_DATE in record.stop_reason
    assert _stats(store)["a"].state is TableState.ERROR


def test_sqlite_value_that_does_not_fit_its_type_is_a_data_error(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}"
    execute(
        source, ["CREATE TABLE s (id INTEGER PRIMARY KEY, n INT)", "INSERT INTO s VALUES (1, 1)"]
    )
    _run(source, target, tmp_path, DataErrorPolicy="LOG_ERROR")
    execute(
        source,
        [
            "BEGIN",
            "INSERT INTO s VALUES (2, 'two')",
            "INSERT INTO s VALUES (3, 3)",
            "UPDATE s SET n = 10 WHERE id = 1",
            "COMMIT",
        ],
    )
    store = _run(source, target, tmp_path, DataErrorPolicy="LOG_ERROR")
    assert table_rows(target, "s", "id") == [(1, 10), (3, 3)]
    reason = "insert: table main.s: column n: value 'two' cannot be represented as int64"
    assert store.data_errors("errs") == [("main.s", "id=2", "n", reason)]
