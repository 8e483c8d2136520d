"""Validation hardening: targets whose columns differ from the source's are a table-level
failure naming the columns (every engine pair, the checksum path, CDC validation and
lake targets), tables without a primary key are compared as multisets of whole rows,
duplicate keys on a target without the key's constraint are found, and a table that
could not be validated is never a pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from opendms.cli.validate_cmd import validate
from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from opendms.state import validation as vstate
from opendms.validate import MISSING_SOURCE, MISSING_TARGET, ValidationState, validate_task
from tests.oracles.lake import lake_files, lake_filesystem, read_lake
from tests.oracles.rows import read_rows
from tests.support.endpoints import source_url, table_name, target_url
from tests.support.sql import execute

from .test_validate import _spec

SETUP = [
    "CREATE TABLE t (id int PRIMARY KEY, a varchar(20), b int)",
    "INSERT INTO t VALUES (1, 'x', 10), (2, 'y', 20)",
]
# The target loses column b and gains column c.
DRIFT = {
    "pg": ["ALTER TABLE {t} DROP COLUMN b", "ALTER TABLE {t} ADD COLUMN c int"],
    "mysql": ["ALTER TABLE {t} DROP COLUMN b, ADD COLUMN c int"],
    "sqlite": ["ALTER TABLE {t} DROP COLUMN b", "ALTER TABLE {t} ADD COLUMN c int"],
}


def _source(kind: str, request: pytest.FixtureRequest, tmp_path: Path, setup: list[str]) -> str:
    url = source_url(kind, request, tmp_path)
    execute(url, setup)
    return url


def _schema(url: str) -> str:
    parsed = EndpointURL.parse(url)
    if parsed.scheme == "sqlite":
        return "main"
    return "public" if parsed.scheme.startswith("postgres") else str(parsed.database)


def _target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return target_url(kind, request, tmp_path)


def _drift(kind: str, url: str, schema: str, table: str = "t") -> None:
    """Drop column b and add column c on the target table."""
    if kind == "lake":
        _rewrite_load(url, schema, table, lambda r: {"id": r["id"], "a": r["a"], "c": 1})
        return
    name = table_name(kind, schema, table)
    execute(url, [s.format(t=name) for s in DRIFT[kind]])


def _load_file(url: str, schema: str, table: str) -> tuple[Any, str]:
    """(filesystem, path) of a lake table's one LOAD file."""
    fs, root = lake_filesystem(url)
    (load,) = lake_files(url)[f"{schema}.{table}"].loads
    return fs, f"{root}/{load}"


def _rewrite_load(url: str, schema: str, table: str, change: Any) -> None:
    fs, path = _load_file(url, schema, table)
    rows = [change(r) for r in pq.read_table(path, filesystem=fs).to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows), path, filesystem=fs)


def _task_file(tmp_path: Path, source: str, target: str, **extra: Any) -> Path:
    body = {"name": "v", "source": source, "target": target, "state": str(tmp_path / "s.db")}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({**body, **extra}))
    return path


def _table_rows(url: str, settings: dict[str, Any], table: str, order: str) -> list[Any]:
    """A table's rows as a sorted multiset of value tuples: read with plain SQL, or the
    lake folded (without a key) by the independent reader."""
    if url.startswith(("file://", "s3://")):
        lake = read_lake(url, settings, keys=[])
        (name,) = [n for n in lake.tables if n.endswith(f".{table}")]
        rows = lake[name].rows
    else:
        rows = read_rows(url, table, order)
    return sorted((tuple(r.values()) for r in rows), key=repr)


def _loaded_and_validated(
    spec: Any, store: StateStore, rows: int, table: str, order: str = "id"
) -> None:
    """Run the task; the test's own oracles find the target's ``table`` equal to the
    source's, and then (only then) a validation must find it equal, ``rows`` each side."""
    run_task(spec, store)
    want = _table_rows(spec.source.url, {}, table, order)
    assert _table_rows(spec.target.url, spec.target.settings, table, order) == want
    assert len(want) == rows
    result = validate_task(spec, store)
    assert [(t.state, t.source_rows, t.target_rows) for t in result.tables] == [
        (ValidationState.VALIDATED, rows, rows)
    ], result.tables
    assert result.ok and result.failures == []


def _cdc_spec(name: str, source: str, target: str, **settings: Any) -> Any:
    body = {"name": name, "source": source, "target": target}
    extra = {"migration_type": "full-load-and-cdc", "task_settings": settings}
    return task_from_dict({**body, **extra}, where="test")


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("pg", "pg"),
        ("pg", "mysql"),
        ("pg", "sqlite"),
        ("pg", "lake"),
        ("mysql", "pg"),
        ("mysql", "mysql"),
        ("mysql", "lake"),
        ("sqlite", "sqlite"),
        ("sqlite", "mysql"),
    ],
)
def test_columns_differ(
    source: str, target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A column missing on the target and one in addition: a ``Table error`` naming both,
    exit 1, no traceback (it was a KeyError); the same with in-database checksums."""
    src = _source(source, request, tmp_path, SETUP)
    dst = _target(target, request, tmp_path)
    task = _task_file(tmp_path, src, dst)
    run_task(_spec("v", src, dst), StateStore(tmp_path / "s.db"))
    _drift(target, dst, _schema(src))
    for checksums in ("--no-checksums", "--checksums"):
        out = CliRunner().invoke(validate, [str(task), "--json", checksums])
        assert out.exit_code == 1, out.output
        assert "Traceback" not in out.output and isinstance(out.exception, SystemExit)
        result = json.loads(out.output)
        assert result["ok"] is False
        (table,) = result["tables"]
        assert table["state"] == "Table error", table
        assert "missing on target: b" in table["message"], table
        assert "extra on target: c" in table["message"], table
        assert result["not_validated"] == [table["table"]]


def test_columns_differ_text_output(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """The human output says how many tables were not validated, which and why."""
    execute(pg_db, [*SETUP, "CREATE TABLE ok (id int PRIMARY KEY)", "INSERT INTO ok VALUES (1)"])
    task = _task_file(tmp_path, pg_db, pg_target_db)
    run_task(_spec("v", pg_db, pg_target_db), StateStore(tmp_path / "s.db"))
    execute(pg_target_db, ["ALTER TABLE t DROP COLUMN b"])
    out = CliRunner().invoke(validate, [str(task)], terminal_width=200)
    assert out.exit_code == 1, out.output
    assert "all tables validated" not in out.output
    assert "1 table(s) not validated" in out.output
    line = next(x for x in out.output.splitlines() if "not validated:" in x)
    assert "public.t" in line and "missing on target: b" in line, line
    assert "extra on target" not in line
    store = StateStore(tmp_path / "s.db")
    states = {s.name: s.state for s in vstate.states(store, "v")}
    assert states == {"ok": "Validated", "t": "Table error"}


def test_case_insensitive_target_columns(pg_db: str, tmp_path: Path) -> None:
    """A SQLite (or MySQL) target finds a column whatever its case, as the engine does."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    execute(
        pg_db, ['CREATE TABLE t (id int PRIMARY KEY, "Name" text)', "INSERT INTO t VALUES (1, 'x')"]
    )
    execute(url, ["CREATE TABLE t (ID integer PRIMARY KEY, NAME text)"])
    settings = {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    spec = task_from_dict(
        {"name": "v", "source": pg_db, "target": url, "task_settings": settings}, where="test"
    )
    store = StateStore(tmp_path / "s.db")
    _loaded_and_validated(spec, store, 1, "t")
    execute(url, ["UPDATE t SET NAME = 'changed'"])
    (failure,) = validate_task(spec, store).failures
    assert failure.details == {"Name": {"source": "x", "target": "changed"}}


# -- tables without a primary key: multisets of whole rows -------------------------------

NOKEY = [
    "CREATE TABLE nk (a int, b varchar(10))",
    "INSERT INTO nk VALUES (1, 'x'), (1, 'x'), (2, 'y'), (3, NULL)",
]
ONE_OF_THE_ONES = {
    "pg": "DELETE FROM {t} WHERE ctid = (SELECT min(ctid) FROM {t} WHERE a = 1)",
    "mysql": "DELETE FROM {t} WHERE a = 1 LIMIT 1",
    "sqlite": "DELETE FROM {t} WHERE rowid = (SELECT min(rowid) FROM {t} WHERE a = 1)",
}
NOKEY_DAMAGE = ["INSERT INTO {t} VALUES (2, 'y')", "UPDATE {t} SET b = '' WHERE a = 3"]


def _damage_nokey(kind: str, url: str, schema: str) -> None:
    """One of the two (1, 'x') rows gone, (2, 'y') twice, (3, NULL) now (3, '')."""
    if kind == "lake":
        fs, path = _load_file(url, schema, "nk")
        data = pq.read_table(path, filesystem=fs)
        rows = data.to_pylist()
        rows.remove({"a": 1, "b": "x"})
        rows.append({"a": 2, "b": "y"})
        rows = [{**r, "b": ""} if r["a"] == 3 else r for r in rows]
        pq.write_table(pa.Table.from_pylist(rows, data.schema), path, filesystem=fs)
        return
    name = table_name(kind, schema, "nk")
    execute(url, [s.format(t=name) for s in [ONE_OF_THE_ONES[kind], *NOKEY_DAMAGE]])


@pytest.mark.parametrize(
    ("source", "target"),
    [("pg", "pg"), ("pg", "mysql"), ("mysql", "pg"), ("sqlite", "sqlite"), ("sqlite", "lake")],
)
def test_no_primary_key_multiset(
    source: str, target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Rows of a table without a key are counted per distinct row on both sides: a
    duplicate on the target, a missing duplicate and a changed row are each found."""
    src = _source(source, request, tmp_path, NOKEY)
    dst = _target(target, request, tmp_path)
    spec = _spec("nk", src, dst)
    store = StateStore(tmp_path / "s.db")
    _loaded_and_validated(spec, store, 4, "nk", "a")
    _damage_nokey(target, dst, _schema(src))
    result = validate_task(spec, store)
    table = f"{_schema(src)}.nk"
    found = sorted(
        [
            ((f.key["a"], f.key["b"]), f.type, f.details["source_rows"], f.details["target_rows"])
            for f in result.failures
            if f.table == table
        ],
        key=repr,
    )
    assert found == [
        ((1, "x"), MISSING_TARGET, 2, 1),
        ((2, "y"), MISSING_SOURCE, 1, 2),
        ((3, ""), MISSING_SOURCE, 0, 1),
        ((3, None), MISSING_TARGET, 1, 0),
    ], found
    (nk,) = result.tables
    assert (nk.state, nk.mismatches, nk.source_rows, nk.target_rows) == (
        ValidationState.MISMATCHED,
        4,
        4,
        4,
    )
    gone = next(f for f in result.failures if f.key == {"a": 1, "b": "x"})
    assert gone.details["source"] == {"a": "1", "b": "x"}  # canonical texts
    assert not result.ok


def test_duplicate_key_on_target_without_constraint(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """A key held twice by a target that lost its primary key constraint is found."""
    execute(pg_db, SETUP)
    spec = _spec("dup", pg_db, pg_target_db)
    store = StateStore(tmp_path / "s.db")
    run_task(spec, store)
    execute(
        pg_target_db,
        ["ALTER TABLE t DROP CONSTRAINT t_pkey", "INSERT INTO t SELECT * FROM t WHERE id = 2"],
    )
    result = validate_task(spec, store)
    assert [(f.key, f.type, f.details) for f in result.failures] == [
        (
            {"id": 2},
            MISSING_SOURCE,
            {"target": {"id": "2", "a": "y", "b": "20"}, "source_rows": 1, "target_rows": 2},
        )
    ]
    assert result.tables[0].target_rows == 3 and not result.ok


def test_lake_without_key_with_cdc_updates(mysql_db: str, tmp_path: Path) -> None:
    """A lake table without a key: CDC inserts replay as added rows; an update cannot be
    matched to its row, so the table is reported as not validated, never as a pass."""
    execute(mysql_db, NOKEY)
    spec = _cdc_spec("lk", mysql_db, f"file://{tmp_path / 'lake'}?DataFormat=parquet")
    store = StateStore(tmp_path / "s.db")
    run_task(spec, store)
    execute(mysql_db, ["INSERT INTO nk VALUES (1, 'x'), (4, 'z')"])
    _loaded_and_validated(spec, store, 6, "nk", "a")
    execute(mysql_db, ["UPDATE nk SET b = 'w' WHERE a = 4"])
    run_task(spec, store)
    schema = str(EndpointURL.parse(mysql_db).database)
    lake = read_lake(f"file://{tmp_path / 'lake'}?DataFormat=parquet", keys=[])
    folded = lake[f"{schema}.nk"]  # the lake itself is right: D of the old row, U of the new
    assert folded.op_rows("a", "b") == [
        ("I", 1, "x"),
        ("I", 4, "z"),
        ("D", 4, "z"),
        ("U", 4, "w"),
    ]
    assert [(r["a"], r["b"]) for r in folded.rows] == [
        (1, "x"),
        (1, "x"),
        (1, "x"),
        (2, "y"),
        (3, None),
        (4, "w"),
    ]
    assert _table_rows(spec.target.url, {}, "nk", "a") == _table_rows(mysql_db, {}, "nk", "a")
    result = validate_task(spec, store)
    (table,) = result.tables
    assert table.state is ValidationState.TABLE_ERROR, table
    assert "cannot be matched" in table.message and "not validated" in table.message
    assert not result.ok and result.not_validated == [table]


def test_cdc_validation_of_a_target_whose_columns_differ(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """CDC validation of a table whose target gained a column: the changes are applied,
    the table's validation state says why it is not validated, the task goes on."""
    execute(pg_db, SETUP)
    spec = _cdc_spec(
        "cv",
        pg_db,
        pg_target_db,
        ValidationSettings={"EnableValidation": True},
        ChangeProcessingTuning={"BatchApplyTimeoutMin": 0},
    )
    store = StateStore(tmp_path / "s.db")
    run_task(spec, store)
    assert [s.state for s in vstate.states(store, "cv")] == ["Validated"]
    execute(pg_target_db, ["ALTER TABLE t ADD COLUMN c int"])
    execute(pg_db, ["UPDATE t SET a = 'changed' WHERE id = 1", "INSERT INTO t VALUES (3, 'z', 30)"])
    run_task(spec, store)
    (state,) = vstate.states(store, "cv")
    assert state.state == "Table error", state
    assert "extra on target: c" in state.message
    assert read_rows(pg_target_db, "t") == [
        {"id": 1, "a": "changed", "b": 10, "c": None},
        {"id": 2, "a": "y", "b": 20, "c": None},
        {"id": 3, "a": "z", "b": 30, "c": None},
    ]
