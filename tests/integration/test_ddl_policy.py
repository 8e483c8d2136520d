"""ChangeProcessingDdlHandlingPolicy during CDC: a source TRUNCATE empties the target (a lake
loses the table's files, as DMS does) unless HandleSourceTableTruncated is false; a source
DROP TABLE drops the target table unless HandleSourceTableDropped is false."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from opendms.config import task_from_dict
from opendms.errors import TaskError
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.support.sql import execute, table_rows

SETUP = [
    "CREATE TABLE t (id int PRIMARY KEY, v text)",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
]


def _run(source: str, target: Any, tmp_path: Path, **policy: bool) -> None:
    spec = task_from_dict(
        {
            "name": "ddl",
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"ChangeProcessingDdlHandlingPolicy": policy},
        },
        where="test",
    )
    run_task(spec, StateStore(tmp_path / "state.db"))


def _lake_ids(lake: Path) -> list[tuple[str, int]]:
    """(Op, id) of every row of every file of the table, LOAD files first (read directly)."""
    files = sorted(str(p) for p in (lake / "public" / "t").rglob("*.parquet"))
    load = [f for f in files if "LOAD" in Path(f).name]
    out = []
    for f in load + [f for f in files if f not in load]:
        rows = duckdb.execute(f"SELECT * FROM read_parquet('{f}')").fetchall()
        names = [
            c[0] for c in duckdb.execute(f"DESCRIBE SELECT * FROM read_parquet('{f}')").fetchall()
        ]
        for row in rows:
            record = dict(zip(names, row, strict=True))
            out.append((str(record.get("Op", "I")), int(record["id"])))
    return out


@pytest.mark.parametrize("truncated", [True, False])
def test_truncate_reaches_a_database_and_a_lake(
    pg_db: str, pg_target_db: str, tmp_path: Path, truncated: bool
) -> None:
    execute(pg_db, SETUP)
    lake = tmp_path / "lake"
    lake_target = {"url": f"file://{lake}", "settings": "DataFormat=parquet"}
    for target in (pg_target_db, lake_target):
        _run(pg_db, target, tmp_path, HandleSourceTableTruncated=truncated)
    execute(pg_db, ["INSERT INTO t VALUES (3, 'c')", "TRUNCATE t", "INSERT INTO t VALUES (4, 'd')"])
    for target in (pg_target_db, lake_target):
        _run(pg_db, target, tmp_path, HandleSourceTableTruncated=truncated)
    if truncated:
        assert table_rows(pg_target_db, "t", "id") == [(4, "d")]
        assert _lake_ids(lake) == [("I", 4)]  # the LOAD file and row 3's file are gone
    else:
        assert [r[0] for r in table_rows(pg_target_db, "t", "id")] == [1, 2, 3, 4]
        assert _lake_ids(lake) == [("I", 1), ("I", 2), ("I", 3), ("I", 4)]


def test_drop_table_keeps_the_target_when_told(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    execute(pg_db, [*SETUP, "CREATE TABLE other (id int PRIMARY KEY)"])
    _run(pg_db, pg_target_db, tmp_path, HandleSourceTableDropped=False)
    execute(
        pg_db, ["INSERT INTO t VALUES (3, 'c')", "DROP TABLE t", "INSERT INTO other VALUES (1)"]
    )
    _run(pg_db, pg_target_db, tmp_path, HandleSourceTableDropped=False)
    assert table_rows(pg_target_db, "t", "id") == [(1, "a"), (2, "b"), (3, "c")]
    assert table_rows(pg_target_db, "other", "id") == [(1,)]


def test_truncate_fails_the_task_with_apply_error_fail_on_truncation_ddl(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    execute(pg_db, SETUP)
    spec = task_from_dict(
        {
            "name": "ddl",
            "source": pg_db,
            "target": pg_target_db,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"ErrorBehavior": {"ApplyErrorFailOnTruncationDdl": True}},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    execute(pg_db, ["INSERT INTO t VALUES (3, 'c')", "TRUNCATE t", "INSERT INTO t VALUES (4, 'd')"])
    for _ in range(2):  # the checkpoint stays before the TRUNCATE: a re-run fails alike
        with pytest.raises(TaskError, match=r"public\.t was truncated on the source"):
            run_task(spec, store)
        assert table_rows(pg_target_db, "t", "id") == [(1, "a"), (2, "b"), (3, "c")]
    record = store.task("ddl")
    assert record is not None and record.status.value == "failed"
