"""TargetMetadata.ParallelLoadThreads: each table or parallel-load segment is written by
that many writers (connections) at once, on the real servers; the target holds the
source's rows, value for value, and the row counts are exact."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL, PrepMode
from opendms.endpoints.lake.engine import ENGINE as LAKE
from opendms.endpoints.lake.target import LakeWriter
from opendms.engine import parallelwrite
from opendms.errors import EndpointError, OpenDMSError
from opendms.model import Column, ColumnType, Kind, Table
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration.readback import normalise_rows, read_mysql, read_sqlite
from tests.oracles.lake import lake_files, read_lake

ROWS = 6000
COLUMNS = "id, name, amount, at, flag, note"
KINDS: dict[str, tuple[Kind, Kind | None]] = {
    "id": (Kind.INT32, None),
    "name": (Kind.STRING, None),
    "amount": (Kind.DECIMAL, None),
    "at": (Kind.TIMESTAMP, None),
    "flag": (Kind.BOOL, None),
    "note": (Kind.STRING, None),
}
THREE_SEGMENTS = {
    "rule-type": "table-settings",
    "rule-id": "2",
    "rule-name": "segments",
    "object-locator": {"schema-name": "public", "table-name": "orders"},
    "parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["1500"], ["4000"]]},
}
DOUBLED = {  # an expression: the Arrow path, not the raw COPY pass-through
    "rule-type": "transformation",
    "rule-id": "3",
    "rule-name": "doubled",
    "rule-target": "column",
    "object-locator": {"schema-name": "public", "table-name": "orders"},
    "rule-action": "add-column",
    "value": "doubled",
    "expression": "$id * 2",
    "data-type": {"type": "int4"},
}


@pytest.fixture
def orders(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, name varchar(40) NOT NULL, "
            "amount numeric(10,2), at timestamp, flag boolean, note text)"
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.25, "
            "timestamp '2024-01-01' + g * interval '17 minutes', g % 3 = 0, "
            "CASE WHEN g % 11 = 0 THEN NULL ELSE repeat('n', g % 37) END "
            f"FROM generate_series(1, {ROWS}) g"
        )
    return pg_db


def _source_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM orders ORDER BY id").fetchall()


def _source_dicts(url: str) -> list[dict[str, Any]]:
    return [dict(zip(KINDS, row, strict=True)) for row in _source_rows(url)]


class Spy:
    """The ParallelWriters a run opened, and the target writers behind them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[parallelwrite.ParallelWriter] = []
        original = parallelwrite.ParallelWriter.__init__

        def recording(writer: parallelwrite.ParallelWriter, *args: Any, **kwargs: Any) -> None:
            original(writer, *args, **kwargs)
            self.opened.append(writer)

        monkeypatch.setattr(parallelwrite.ParallelWriter, "__init__", recording)

    def check(self, units: int, threads: int = 4) -> None:
        """``units`` ParallelWriters of ``threads`` writers each, all rows written, and
        each unit's work shared by more than one writer."""
        assert len(self.opened) == units
        for parallel in self.opened:
            assert len(parallel.writers) == threads
            rows = [w.rows for w in parallel.writers]  # type: ignore[attr-defined]
            assert sum(1 for r in rows if r) > 1, rows
        written = sum(w.rows for p in self.opened for w in p.writers)  # type: ignore[attr-defined]
        assert written == ROWS


def _run(
    source: str, target: Any, tmp_path: Path, *rules: dict[str, Any], threads: int = 4
) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    selection = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "orders",
        "object-locator": {"schema-name": "public", "table-name": "orders"},
        "rule-action": "include",
    }
    spec = {
        "name": "plt",
        "source": source,
        "target": target,
        "table_mappings": {"rules": [selection, *rules]},
        "task_settings": {
            "TargetMetadata": {"ParallelLoadThreads": threads},
            "FullLoadSettings": {"CommitRate": 250},  # 24 batches to share out
        },
    }
    run_task(task_from_dict(spec, where="test"), store)
    (table,) = store.tables("plt")
    assert table.full_load_rows == ROWS  # counted by the writers, exactly
    return store


@pytest.mark.parametrize("segmented", [False, True], ids=["table", "segments"])
def test_postgres_to_postgres_arrow_path(
    orders: str, pg_target_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segmented: bool
) -> None:
    spy = Spy(monkeypatch)
    rules = [DOUBLED, THREE_SEGMENTS] if segmented else [DOUBLED]
    _run(orders, pg_target_db, tmp_path, *rules)
    spy.check(units=3 if segmented else 1)
    with psycopg.connect(pg_target_db) as conn:
        got = conn.execute(f"SELECT {COLUMNS}, doubled FROM orders ORDER BY id").fetchall()
        key = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'orders'::regclass AND indisprimary"
        ).fetchone()
    assert got == [(*row, row[0] * 2) for row in _source_rows(orders)]
    assert key == (1,)  # built once every writer was done
    assert got[10][2] == Decimal("13.75") and got[10][5] is None  # id 11


def test_postgres_to_postgres_raw_pass_through_ignores_it(
    orders: str,
    pg_target_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy(monkeypatch)
    with caplog.at_level(logging.INFO, logger="opendms.fullload"):
        _run(orders, pg_target_db, tmp_path, THREE_SEGMENTS)
    assert spy.opened == []
    assert any("raw COPY pass-through" in r.getMessage() for r in caplog.records)
    assert any(
        "ParallelLoadThreads does not apply" in r.getMessage() and "public.orders" in r.getMessage()
        for r in caplog.records
    )
    assert _source_rows(pg_target_db) == _source_rows(orders)


@pytest.mark.parametrize("segmented", [False, True], ids=["table", "segments"])
def test_postgres_to_mariadb(
    orders: str,
    mysql_target_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    segmented: bool,
) -> None:
    spy = Spy(monkeypatch)
    _run(orders, mysql_target_db, tmp_path, *([THREE_SEGMENTS] if segmented else []))
    spy.check(units=3 if segmented else 1)
    database = EndpointURL.parse(mysql_target_db).database
    got = normalise_rows(read_mysql(mysql_target_db, database, "orders", "id"), KINDS)
    assert got == _source_dicts(orders)


def test_postgres_to_sqlite_keeps_one_writer(
    orders: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy(monkeypatch)
    target = tmp_path / "dst.db"
    with caplog.at_level(logging.INFO, logger="opendms.fullload"):
        _run(orders, f"sqlite:///{target}", tmp_path, THREE_SEGMENTS)
    assert spy.opened == []
    said = [r.getMessage() for r in caplog.records if "ParallelLoadThreads=4" in r.getMessage()]
    assert len(said) == 1 and "sqlite target takes one writer at a time" in said[0]
    got = normalise_rows(read_sqlite(str(target), "orders", "id"), KINDS)
    assert got == _source_dicts(orders)


@pytest.mark.parametrize("segmented", [False, True], ids=["table", "segments"])
def test_postgres_to_lake(
    orders: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segmented: bool
) -> None:
    """Small files (several per writer): the writers share each table's or segment's
    LOAD counter, so the names run 1, 2, … with no gap and no name twice."""
    spy = Spy(monkeypatch)
    settings = "DataFormat=parquet;MaxFileSize=16;RowGroupLength=200"
    lake = tmp_path / "lake"
    lake.mkdir()
    target = {"url": f"file://{lake}", "settings": settings}
    _run(orders, target, tmp_path, *([THREE_SEGMENTS] if segmented else []))
    spy.check(units=3 if segmented else 1)
    loads = lake_files(lake, settings)["public.orders"].loads  # counters checked here
    names = [p.rsplit("/", 1)[-1] for p in loads]
    prefixes = [f"SEGMENT{i}_" for i in (1, 2, 3)] if segmented else [""]
    for prefix in prefixes:
        mine = [n for n in names if n.startswith(f"{prefix}LOAD")]
        assert len(mine) >= 4  # at least one file per writer
        assert mine == [f"{prefix}LOAD{i:08X}.parquet" for i in range(1, len(mine) + 1)]
    assert len(names) == sum(len([n for n in names if n.startswith(p + "LOAD")]) for p in prefixes)
    table = read_lake(lake, settings, keys=["id"])["public.orders"]
    got = [tuple(row[c] for c in COLUMNS.split(", ")) for row in table.rows]
    assert got == _source_rows(orders)


def test_lake_writers_of_one_segment_share_its_counter_and_a_new_load_starts_at_1(
    tmp_path: Path,
) -> None:
    """Four writers of segment 2, open at once: their names never collide and run 1, 2, …;
    after ``prepare`` (the table loaded again) the counter starts over."""
    table = Table("public", "t", (Column("id", ColumnType(Kind.INT32), nullable=False),), ("id",))
    (tmp_path / "lake").mkdir()
    target = LAKE.lake_target(EndpointURL.parse(f"file://{tmp_path}/lake"), {"DataFormat": "csv"})
    folder = tmp_path / "lake/public/t"

    def load(first: int) -> list[str]:
        target.prepare(table, PrepMode.TRUNCATE_BEFORE_LOAD)
        writers = [target.writer(table, 2) for _ in range(4)]
        for i, writer in enumerate(writers):
            writer.write(pa.RecordBatch.from_pydict({"id": [first + i]}))
        for writer in reversed(writers):
            writer.close()
        return sorted(p.name for p in folder.iterdir())

    assert load(0) == [f"SEGMENT2_LOAD0000000{i}.csv" for i in (1, 2, 3, 4)]
    assert load(10) == [f"SEGMENT2_LOAD0000000{i}.csv" for i in (1, 2, 3, 4)]
    ids = sorted(int(line) for p in folder.iterdir() for line in p.read_text().split())
    assert ids == [10, 11, 12, 13]


def test_a_writer_error_fails_the_table_and_aborts_every_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite source (it reads CommitRate rows per batch) into a lake: the third batch
    written fails; the table ends in error with that reason, every writer is aborted (no
    LOAD file is published, no partial file stays) and the other table loads."""
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        for name in ("bad", "good"):
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany(
                f"INSERT INTO {name} VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 3001)]
            )
    spy = Spy(monkeypatch)
    calls = itertools.count(1)
    write = LakeWriter.write

    def failing(writer: LakeWriter, batch: pa.RecordBatch) -> None:
        if writer.table.name == "bad" and next(calls) == 3:
            raise EndpointError("lake", "disk full")
        write(writer, batch)

    monkeypatch.setattr(LakeWriter, "write", failing)
    (tmp_path / "lake").mkdir()
    spec = {
        "name": "plt",
        "source": f"sqlite:///{source}",
        "target": {"url": f"file://{tmp_path}/lake", "settings": "DataFormat=parquet"},
        "task_settings": {
            "TargetMetadata": {"ParallelLoadThreads": 3},
            "FullLoadSettings": {"CommitRate": 100, "MaxFullLoadSubTasks": 1},
        },
    }
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(OpenDMSError):
        run_task(task_from_dict(spec, where="test"), store)
    tables = {t.name: t for t in store.tables("plt")}
    assert tables["bad"].state is TableState.ERROR and "disk full" in tables["bad"].error
    assert tables["good"].state is TableState.COMPLETED and tables["good"].full_load_rows == 3000
    assert list((tmp_path / "lake/main/bad").iterdir()) == []
    assert len(spy.opened) == 2 and all(not t.is_alive() for p in spy.opened for t in p.threads)
    good = read_lake(tmp_path / "lake", "DataFormat=parquet", keys=["id"])["main.good"]
    assert [(r["id"], r["v"]) for r in good.rows] == [(i, f"v{i}") for i in range(1, 3001)]
