"""``opendms validate`` on the source -> target pairs test_validate.py does not cover:
MySQL -> MySQL, MySQL -> SQLite, SQLite -> PostgreSQL, SQLite -> MySQL, MySQL -> local
Parquet lake and SQLite -> S3 Parquet lake. Each pair: a clean full load, shown equal to
the source by the test's own oracles, validates with no failures; then the target is
damaged and exactly the damaged keys are reported."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from opendms.state import validation as vstate
from opendms.validate import (
    MISSING_SOURCE,
    MISSING_TARGET,
    RECORD_DIFF,
    ValidationResult,
    ValidationState,
    validate_task,
)
from tests.oracles.lake import lake_files, lake_filesystem, read_lake
from tests.support.endpoints import table_name, target_url

from .test_validate import _mysql_run, _pg_run, _spec, _sqlite_run, assert_copied

ROWS = 40


def _name(i: int) -> str:
    return f"item {i} 🚀 ✓"


def _note(i: int) -> str | None:
    return None if i % 3 == 1 else f"note {i}"  # id 7 is NULL


SQLITE_SETUP = (
    "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price decimal(12,2),"
    " at datetime, note text)"
)
SQLITE_ROWS = [
    (i, _name(i), str(Decimal("1.25") * i), f"2024-01-01 10:{i:02d}:00.123456", _note(i))
    for i in range(1, ROWS + 1)
]

MYSQL_SETUP = [
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(50) CHARACTER SET utf8mb4 NOT NULL,"
    " price decimal(12,2), at datetime(6), note varchar(20) NULL)",
    "INSERT INTO items SELECT seq, concat('item ', seq, ' 🚀 ✓'), seq * 1.25,"
    " timestamp '2024-01-01 10:00:00.123456' + INTERVAL seq MINUTE,"
    f" IF(seq % 3 = 1, NULL, concat('note ', seq)) FROM seq_1_to_{ROWS}",
]

# The damage done to every target, and what validation must say about it.
EXPECTED = {
    3: (RECORD_DIFF, {"name"}),  # a changed value
    5: (MISSING_TARGET, None),  # a deleted row
    999: (MISSING_SOURCE, None),  # an extra row
    7: (RECORD_DIFF, {"note"}),  # NULL on the source, '' on the target
    9: (RECORD_DIFF, {"price"}),  # 11.25 -> 11.26
    11: (RECORD_DIFF, {"at"}),  # shifted by an hour
}

SQL_DAMAGE = [
    "UPDATE {t} SET name = 'changed' WHERE id = 3",
    "DELETE FROM {t} WHERE id = 5",
    "INSERT INTO {t} (id, name) VALUES (999, 'extra')",
    "UPDATE {t} SET note = '' WHERE id = 7",
    "UPDATE {t} SET price = price + 0.01 WHERE id = 9",
    "UPDATE {t} SET at = {shift} WHERE id = 11",
]
SHIFT = {
    "pg": "at + interval '1 hour'",
    "mysql": "at + INTERVAL 1 HOUR",
    "sqlite": "replace(at, ' 10:', ' 11:')",
}


def _damage(kind: str, table: str) -> list[str]:
    return [s.format(t=table, shift=SHIFT[kind]) for s in SQL_DAMAGE]


def _sqlite_source(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SQLITE_SETUP)
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", SQLITE_ROWS)
    conn.close()
    return f"sqlite:///{path}", "main"


def _mysql_source(request: pytest.FixtureRequest) -> tuple[str, str]:
    url = str(request.getfixturevalue("mysql_db"))
    _mysql_run(url, MYSQL_SETUP)
    return url, str(EndpointURL.parse(url).database)


def _damage_lake(where: str, schema: str) -> None:
    """Rewrite the table's Parquet LOAD file with the same damage as SQL_DAMAGE."""
    fs, root = lake_filesystem(where)
    items = lake_files(where, "DataFormat=parquet")[f"{schema}.items"]
    assert len(items.loads) == 1 and items.cdc == [], (items.loads, items.cdc)
    path = f"{root}/{items.loads[0]}"
    data = pq.read_table(path, filesystem=fs)
    by_id = {r["id"]: r for r in data.to_pylist()}
    assert len(by_id) == ROWS and by_id[3]["name"] == _name(3)
    assert by_id[7]["note"] is None and by_id[9]["price"] == Decimal("11.25")
    by_id[3]["name"] = "changed"
    del by_id[5]
    by_id[999] = {**{k: None for k in by_id[1]}, "id": 999, "name": "extra"}
    by_id[7]["note"] = ""
    by_id[9]["price"] += Decimal("0.01")
    by_id[11]["at"] += timedelta(hours=1)
    rows = list(by_id.values())
    pq.write_table(pa.Table.from_pylist(rows, data.schema), path, filesystem=fs)


def _target(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, schema: str
) -> tuple[str, Callable[[], None]]:
    """(target URL, a function damaging the loaded target)."""
    if kind == "s3":
        s3 = str(request.getfixturevalue("s3_url"))
        return f"{s3}&DataFormat=parquet", lambda: _damage_lake(s3, schema)
    url = target_url(kind, request, tmp_path)
    if kind == "lake":
        return url, lambda: _damage_lake(str(tmp_path / "lake"), schema)
    run = {"mysql": _mysql_run, "pg": _pg_run, "sqlite": _sqlite_run}[kind]
    return url, lambda: run(url, _damage(kind, table_name(kind, schema, "items")))


def _by_key(result: ValidationResult, table: str) -> dict[int, Any]:
    return {f.key["id"]: f for f in result.failures if f.table == table}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("mysql", "mysql"),
        ("mysql", "sqlite"),
        ("sqlite", "pg"),
        ("sqlite", "mysql"),
        ("mysql", "lake"),
        ("sqlite", "s3"),
    ],
)
def test_pair(source: str, target: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src_url, schema = _mysql_source(request) if source == "mysql" else _sqlite_source(tmp_path)
    dst_url, damage = _target(target, request, tmp_path, schema)
    table = f"{schema}.items"
    spec = _spec("v", src_url, dst_url)
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    assert_copied(src_url, dst_url, schema, settings=spec.target.settings)  # the oracles first

    clean = validate_task(spec, store)
    assert clean.failures == [], clean.failures
    assert [(t.qualified, t.state) for t in clean.tables] == [(table, ValidationState.VALIDATED)]
    assert clean.tables[0].source_rows == clean.tables[0].target_rows == ROWS
    assert clean.ok

    damage()
    result = validate_task(spec, store)
    assert not result.ok
    found = _by_key(result, table)
    assert set(found) == set(EXPECTED), found
    for key, (kind, columns) in EXPECTED.items():
        assert found[key].type == kind, (key, found[key])
        if columns is not None:
            assert set(found[key].details) == columns, (key, found[key].details)
    items = result.tables[0]
    assert items.state is ValidationState.MISMATCHED
    assert items.mismatches == len(EXPECTED)
    assert (items.source_rows, items.target_rows) == (ROWS, ROWS)  # -1 deleted, +1 extra
    # the values shown are the real ones, emoji included
    assert found[3].details["name"] == {"source": _name(3), "target": "changed"}
    assert found[7].details["note"] == {"source": None, "target": ""}
    price = found[9].details["price"]
    assert (Decimal(price["source"]), Decimal(price["target"])) == (
        Decimal("11.25"),
        Decimal("11.26"),
    )
    at = found[11].details["at"]
    assert [datetime.fromisoformat(at[side]) for side in ("source", "target")] == [
        datetime(2024, 1, 1, 10, 11, 0, 123456),
        datetime(2024, 1, 1, 11, 11, 0, 123456),
    ], at
    assert found[5].details["source"]["name"] == _name(5)
    assert found[999].details["target"]["name"] == "extra"
    stored = {f.key["id"]: f.type for f in vstate.failures(store, "v")}
    assert stored == {k: v[0] for k, v in EXPECTED.items()}


def test_mysql_to_parquet_lake_with_cdc(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Binlog changes land as CDC files (checked by the independent reader); validation
    replays LOAD then CDC files, so the lake matches the changed source, and a later
    source change shows up as a diff."""
    src_url, schema = _mysql_source(request)
    lake = tmp_path / "lake"
    spec = task_from_dict(
        {
            "name": "c",
            "source": src_url,
            "target": f"file://{lake}?DataFormat=parquet",
            "migration_type": "full-load-and-cdc",
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    _mysql_run(
        src_url,
        [
            "UPDATE items SET name = 'cdc ✓', note = '' WHERE id = 2",
            "DELETE FROM items WHERE id = 4",
            "INSERT INTO items (id, name, price) VALUES (100, 'new 🚀', 1.10)",
        ],
    )
    run_task(spec, store)
    items = read_lake(f"file://{lake}?DataFormat=parquet", keys=["id"])[f"{schema}.items"]
    assert len(items.loads) == 1 and items.cdc, (items.loads, items.cdc)
    assert items.op_rows("id") == [("U", 2), ("D", 4), ("I", 100)]
    assert items.changes[1].row["name"] == _name(4)  # the whole old row
    assert [r["id"] for r in items.rows] == [*(i for i in range(1, ROWS + 1) if i != 4), 100]
    assert (items.rows[1]["name"], items.rows[1]["note"]) == ("cdc ✓", "")
    assert_copied(src_url, f"file://{lake}", schema, settings={"DataFormat": "parquet"})
    result = validate_task(spec, store)
    assert result.failures == [] and result.ok
    assert result.tables[0].state is ValidationState.VALIDATED
    assert result.tables[0].source_rows == result.tables[0].target_rows == ROWS
    _mysql_run(src_url, ["UPDATE items SET note = NULL WHERE id = 2"])  # not captured yet
    stale = validate_task(spec, store)
    assert [(f.key, f.type, f.details) for f in stale.failures] == [
        ({"id": 2}, RECORD_DIFF, {"note": {"source": None, "target": ""}})
    ]
