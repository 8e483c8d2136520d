"""``opendms validate``: a clean full load validates; each kind of corruption on the
target is reported with exactly the damaged keys and the right failure type.

Validation is only ever the thing tested: before a clean validation is expected to
pass, the target is shown equal to the source by the test's own oracles (plain SQL,
:mod:`tests.oracles.rows`, or the independent lake reader), and every expected failure
comes from damage the test did to the target itself."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
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
from opendms.validate import (
    MISSING_SOURCE,
    MISSING_TARGET,
    RECORD_DIFF,
    ValidationResult,
    ValidationState,
    validate_task,
)
from tests.oracles.lake import lake_files, read_lake
from tests.oracles.rows import Row, by_key, convert, json_text, naive_utc, read_rows
from tests.support.sql import execute

PG_SETUP = """
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), qty bigint,
  ok boolean, born date, at timestamp, atz timestamptz, ratio double precision,
  raw bytea, doc jsonb, code uuid, tag char(4));
INSERT INTO items SELECT g, CASE WHEN g = 7 THEN NULL ELSE 'item ' || g || ' ✓' END,
  g * 1.25, g * 1000000000::bigint, g % 2 = 0, date '2024-01-01' + g,
  timestamp '2024-01-01 10:00:00.123456' + g * interval '1 min',
  timestamptz '2024-01-01 10:00+02' + g * interval '1 hour', g / 7.0, '\\x00ff'::bytea,
  jsonb_build_object('g', g, 'a', 'x'), md5(g::text)::uuid, 'ab'
  FROM generate_series(1, 40) g;
CREATE TABLE nokey (a int, b text);
INSERT INTO nokey VALUES (1, 'x');
"""

MYSQL_SETUP = [
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(50), price decimal(12,2), qty bigint,"
    " ok tinyint(1), born date, at datetime(6), atz timestamp(6) NULL, ratio double,"
    " raw varbinary(10), doc json, tag char(4))",
    "INSERT INTO items SELECT seq, IF(seq = 7, NULL, concat('item ', seq)), seq * 1.25,"
    " seq * 1000000000, seq % 2, date '2024-01-01' + INTERVAL seq DAY,"
    " timestamp '2024-01-01 10:00:00.123456' + INTERVAL seq MINUTE,"
    " timestamp '2024-01-01 08:00:00' + INTERVAL seq HOUR, seq / 7.0, x'00ff',"
    " json_object('g', seq, 'a', 'x'), 'ab' FROM seq_1_to_40",
]

# The damage done to every target, and what validation must say about it.
EXPECTED = {
    3: (RECORD_DIFF, {"name"}),  # a changed value
    5: (MISSING_TARGET, None),  # a deleted row
    999: (MISSING_SOURCE, None),  # an extra row
    7: (RECORD_DIFF, {"name"}),  # NULL on the source, '' on the target
    9: (RECORD_DIFF, {"price"}),  # 11.25 -> 11.26
    11: (RECORD_DIFF, {"atz"}),  # shifted by an hour
}

PG_DAMAGE = [
    "UPDATE {t} SET name = 'changed' WHERE id = 3",
    "DELETE FROM {t} WHERE id = 5",
    "INSERT INTO {t} (id, name) VALUES (999, 'extra')",
    "UPDATE {t} SET name = '' WHERE id = 7",
    "ALTER TABLE {t} ALTER COLUMN price TYPE numeric(14,4)",  # 1.50 -> 1.5000: no diff
    "UPDATE {t} SET price = price + 0.01 WHERE id = 9",
    "UPDATE {t} SET atz = atz + interval '1 hour' WHERE id = 11",
]
MYSQL_DAMAGE = [
    "UPDATE {t} SET name = 'changed' WHERE id = 3",
    "DELETE FROM {t} WHERE id = 5",
    "INSERT INTO {t} (id, name) VALUES (999, 'extra')",
    "UPDATE {t} SET name = '' WHERE id = 7",
    "ALTER TABLE {t} MODIFY price DECIMAL(14,4)",
    "UPDATE {t} SET price = price + 0.01 WHERE id = 9",
    "UPDATE {t} SET atz = atz + INTERVAL 1 HOUR WHERE id = 11",
]


def _spec(name: str, source: str, target: str) -> Any:
    return task_from_dict(
        {"name": name, "source": source, "target": target, "migration_type": "full-load"},
        where="test",
    )


def _pg_run(url: str, statements: list[str]) -> None:
    execute(url, statements)


_mysql_run = _pg_run  # one helper for every engine; kept under the names other tests import
_sqlite_run = _pg_run


def _is_lake(url: str) -> bool:
    return url.startswith(("file://", "s3://"))


def _target_rows(url: str, schema: str, table: str, settings: dict[str, Any]) -> list[Row]:
    """The target's rows: read with plain SQL, or the lake folded by the independent reader
    (JSON is text in Parquet)."""
    if not _is_lake(url):
        return read_rows(url, table)
    name = f"{schema}.{table}"
    keys: dict[str, list[str]] = {t: [] for t in lake_files(url, settings).tables}
    rows = read_lake(url, settings, keys=keys | {name: ["id"]})[name].rows
    return convert(rows, **{c: json_text for c in ("doc",) if rows and c in rows[0]})


def _as_on_mysql(row: Row) -> Row:
    """README "Types": into MySQL/MariaDB a timestamptz becomes a DATETIME(6) in UTC (a
    MariaDB TIMESTAMP, read in UTC, compares the same way); MariaDB reads a CHAR(n) value
    without its trailing spaces, so the CHAR(4) column ``tag`` is compared stripped."""
    out: Row = {c: naive_utc(v) if isinstance(v, dt.datetime) else v for c, v in row.items()}
    if isinstance(tag := out.get("tag"), str):
        out["tag"] = tag.rstrip()
    return out


def assert_copied(
    source: str,
    target: str,
    schema: str,
    table: str = "items",
    settings: dict[str, Any] | None = None,
) -> None:
    """The target holds exactly the source's rows, by the test's own oracles, so that a
    clean validation is known to be right (never the other way round)."""
    want = read_rows(source, table)
    got = _target_rows(target, schema, table, settings or {})
    if {urlsplit(source).scheme, urlsplit(target).scheme} & {"mysql", "mariadb"}:
        want = [_as_on_mysql(r) for r in want]
        got = [_as_on_mysql(r) for r in got]
    assert sorted(by_key(got)) == sorted(by_key(want))
    for key, row in by_key(want).items():
        assert by_key(got)[key] == row, key


def _by_key(result: ValidationResult, table: str) -> dict[int, Any]:
    return {f.key["id"]: f for f in result.failures if f.table == table}


def _check_damage(result: ValidationResult, table: str = "public.items") -> None:
    found = _by_key(result, table)
    assert set(found) == set(EXPECTED), found
    for key, (kind, columns) in EXPECTED.items():
        assert found[key].type == kind, (key, found[key])
        if columns is not None:
            assert set(found[key].details) == columns, (key, found[key].details)
    items = next(t for t in result.tables if t.qualified == table)
    assert items.state is ValidationState.MISMATCHED
    assert items.mismatches == len(EXPECTED)


def _clean_then_damaged(
    spec: Any, tmp_path: Path, damage: Callable[[], None], table: str = "public.items"
) -> tuple[ValidationResult, StateStore]:
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    schema, name = table.split(".")
    assert_copied(spec.source.url, spec.target.url, schema, name, spec.target.settings)
    clean = validate_task(spec, store)
    items = next(t for t in clean.tables if t.qualified == table)
    assert items.state is ValidationState.VALIDATED, items
    assert items.source_rows == items.target_rows == 40
    assert clean.failures == []
    damage()
    return validate_task(spec, store, report=tmp_path / "diff.json"), store


@pytest.fixture
def pg_source(pg_db: str) -> str:
    _pg_run(pg_db, [PG_SETUP])
    return pg_db


def test_pg_to_pg(pg_source: str, pg_target_db: str, tmp_path: Path) -> None:
    spec = _spec("v", pg_source, pg_target_db)
    damage = [s.format(t="items") for s in PG_DAMAGE]
    result, store = _clean_then_damaged(spec, tmp_path, lambda: _pg_run(pg_target_db, damage))
    _check_damage(result)
    assert result.ok is False
    nokey = next(t for t in result.tables if t.name == "nokey")
    assert nokey.state is ValidationState.VALIDATED  # compared as a multiset of rows
    diff = _by_key(result, "public.items")
    assert diff[3].details["name"] == {"source": "item 3 ✓", "target": "changed"}
    assert diff[7].details["name"] == {"source": None, "target": ""}
    # compared (and shown) at the larger of the two scales: the target is numeric(14,4)
    assert diff[9].details["price"] == {"source": "11.2500", "target": "11.2600"}
    assert diff[11].details["atz"]["source"] == "2024-01-01 19:00:00.000000"
    assert diff[11].details["atz"]["target"] == "2024-01-01 20:00:00.000000"
    assert diff[5].details["source"]["name"] == "item 5 ✓"
    assert diff[999].details["target"]["name"] == "extra"
    # stored in the state store and in the report
    stored = {f.key["id"]: f.type for f in vstate.failures(store, "v")}
    assert stored == {k: v[0] for k, v in EXPECTED.items()}
    states = {s.name: s.state for s in vstate.states(store, "v")}
    assert states == {"items": "Mismatched records", "nokey": "Validated"}
    report = json.loads((tmp_path / "diff.json").read_text())
    assert {f["key"]["id"]: f["type"] for f in report["failures"]} == stored


class _WithValidation:
    """Task settings plus a ValidationSettings section (until config.py has one)."""

    def __init__(self, settings: Any, **validation: int) -> None:
        self._settings = settings
        self.ValidationSettings = validation

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)


def test_failure_limits(pg_source: str, pg_target_db: str, tmp_path: Path) -> None:
    _pg_run(
        pg_source,
        [
            "CREATE TABLE more (id int PRIMARY KEY, v int)",
            "INSERT INTO more SELECT g, g FROM generate_series(1, 10) g",
            "CREATE TABLE zz (id int PRIMARY KEY)",
            "INSERT INTO zz VALUES (1)",
        ],
    )
    spec = _spec("lim", pg_source, pg_target_db)
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    _pg_run(
        pg_target_db,
        ["UPDATE items SET qty = 0 WHERE id <= 30", "DELETE FROM more", "DELETE FROM zz"],
    )
    every = validate_task(spec, store, tables=["public.items"])
    assert [t.name for t in every.tables] == ["items"]
    assert len(every.failures) == 30 and every.tables[0].mismatches == 30
    settings = _WithValidation(spec.task_settings, TableFailureMaxCount=5, FailureMaxCount=8)
    limited = validate_task(spec.model_copy(update={"task_settings": settings}), store)
    by_table = {t.name: t for t in limited.tables}
    assert len(by_table["items"].failures) == 5 and by_table["items"].mismatches == 30
    assert len(by_table["more"].failures) == 3 and by_table["more"].mismatches == 10
    assert {f.type for f in by_table["more"].failures} == {MISSING_TARGET}
    assert by_table["zz"].state is ValidationState.PENDING
    assert by_table["nokey"].state is ValidationState.PENDING  # the budget ran out
    assert len(vstate.failures(store, "lim")) == 8


def test_pg_to_mysql(pg_source: str, mysql_target_db: str, tmp_path: Path) -> None:
    spec = _spec("v", pg_source, mysql_target_db)
    damage = [s.format(t="items") for s in MYSQL_DAMAGE]
    result, _ = _clean_then_damaged(spec, tmp_path, lambda: _mysql_run(mysql_target_db, damage))
    _check_damage(result)


def test_mysql_to_pg(mysql_db: str, pg_target_db: str, tmp_path: Path) -> None:
    _mysql_run(mysql_db, MYSQL_SETUP)
    database = EndpointURL.parse(mysql_db).database
    spec = _spec("v", mysql_db, pg_target_db)
    damage = [s.format(t=f'"{database}".items') for s in PG_DAMAGE]
    table = f"{database}.items"
    result, _ = _clean_then_damaged(spec, tmp_path, lambda: _pg_run(pg_target_db, damage), table)
    _check_damage(result, table)


def test_pg_to_sqlite(pg_source: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    spec = _spec("v", pg_source, url)
    damage = [
        "UPDATE items SET name = 'changed' WHERE id = 3",
        "DELETE FROM items WHERE id = 5",
        "INSERT INTO items (id, name) VALUES (999, 'extra')",
        "UPDATE items SET name = '' WHERE id = 7",
        "UPDATE items SET price = '2.5000' WHERE id = 2",  # 2.50 written with another scale
        "UPDATE items SET price = '11.26' WHERE id = 9",
        "UPDATE items SET atz = replace(atz, ' 19:', ' 20:') WHERE id = 11",
    ]
    result, _ = _clean_then_damaged(spec, tmp_path, lambda: _sqlite_run(url, damage))
    _check_damage(result)


def test_pg_to_lake(pg_source: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    spec = _spec("v", pg_source, f"file://{lake}?DataFormat=parquet")
    result, _ = _clean_then_damaged(spec, tmp_path, lambda: _damage_lake(lake))
    _check_damage(result)


PG_COLUMNS = ["id", "name", "price", "qty", "ok", "born", "at", "atz", "ratio", "raw", "doc"]
PG_COLUMNS += ["code", "tag"]


def test_pg_to_csv_lake_with_cdc(pg_source: str, tmp_path: Path) -> None:
    """A CSV lake after CDC, its changes and rows checked by the independent reader
    against the source read with SQL: validation replays LOAD and CDC files before
    comparing, finds it equal, and finds a value damaged in the CDC file."""
    lake = tmp_path / "lake"
    spec = task_from_dict(
        {
            "name": "c",
            "source": pg_source,
            "target": f"file://{lake}",
            "migration_type": "full-load-and-cdc",
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    _pg_run(
        pg_source, ["UPDATE items SET name = 'cdc' WHERE id = 2", "DELETE FROM items WHERE id = 4"]
    )
    run_task(spec, store)
    columns = {"public.items": PG_COLUMNS, "public.nokey": ["a", "b"]}
    keys = {"public.items": ["id"], "public.nokey": []}
    items = read_lake(lake, keys=keys, columns=columns)["public.items"]
    assert items.op_rows("id", "name") == [("U", "2", "cdc"), ("D", "4", None)]
    want = [(r["id"], r["name"]) for r in read_rows(pg_source, "items")]
    assert sorted((int(r["id"]), r["name"]) for r in items.rows) == want  # CSV: text
    result = validate_task(spec, store, tables=["public.items"])
    assert result.failures == [] and result.ok
    assert result.tables[0].source_rows == result.tables[0].target_rows == 39
    (cdc,) = items.cdc  # damage the CDC file: validation must replay it, not the LOAD alone
    text = (lake / cdc).read_text()
    assert text.count('"cdc"') == 1
    (lake / cdc).write_text(text.replace('"cdc"', '"cdX"'))
    damaged = validate_task(spec, store, tables=["public.items"])
    assert [(f.key, f.type, f.details) for f in damaged.failures] == [
        ({"id": 2}, RECORD_DIFF, {"name": {"source": "cdc", "target": "cdX"}})
    ]


def _damage_lake(lake: Path) -> None:
    (load,) = lake_files(lake, "DataFormat=parquet")["public.items"].loads
    path = lake / load
    data = pq.read_table(path)
    rows = data.to_pylist()
    by_id = {r["id"]: r for r in rows}
    by_id[3]["name"] = "changed"
    del by_id[5]
    by_id[999] = {**by_id[1], "id": 999, "name": "extra"}
    by_id[7]["name"] = ""
    by_id[9]["price"] = by_id[9]["price"] + by_id[9]["price"].__class__("0.01")
    from datetime import timedelta

    by_id[11]["atz"] = by_id[11]["atz"] + timedelta(hours=1)
    pq.write_table(pa.Table.from_pylist(list(by_id.values()), data.schema), path)


def test_cli(pg_source: str, pg_target_db: str, tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "cli",
                "source": pg_source,
                "target": pg_target_db,
                "state": str(tmp_path / "state.db"),
            }
        )
    )
    run_task(_spec("cli", pg_source, pg_target_db), StateStore(tmp_path / "state.db"))
    runner = CliRunner()
    ok = runner.invoke(validate, [str(task), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    _pg_run(pg_target_db, ["DELETE FROM items WHERE id = 4"])
    report = tmp_path / "r.json"
    bad = runner.invoke(validate, [str(task), "--table", "public.items", "--report", str(report)])
    assert bad.exit_code == 1, bad.output
    assert "Mismatched records" in bad.output
    failures = json.loads(report.read_text())["failures"]
    assert [(f["key"], f["type"]) for f in failures] == [({"id": 4}, MISSING_TARGET)]
    unknown = runner.invoke(validate, [str(task), "--table", "public.nope"])
    assert unknown.exit_code == 2
    assert "public.nope" in unknown.output and "Traceback" not in unknown.output
    missing = runner.invoke(validate, [str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 2 and "error:" in missing.output


def test_renamed_columns_and_missing_target_table(
    pg_source: str, pg_target_db: str, tmp_path: Path
) -> None:
    """Columns are compared through the task's transformation rules (renames; added
    expression columns are skipped); a target table that is gone is an Error naming it."""
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "public", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "rename",
            "rule-target": "column",
            "object-locator": {
                "schema-name": "public",
                "table-name": "items",
                "column-name": "name",
            },
            "rule-action": "rename",
            "value": "label",
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "add",
            "rule-target": "column",
            "object-locator": {"schema-name": "public", "table-name": "items"},
            "rule-action": "add-column",
            "value": "twice",
            "expression": "$qty * 2",
            "data-type": {"type": "int8"},
        },
    ]
    spec = task_from_dict(
        {
            "name": "ren",
            "source": pg_source,
            "target": pg_target_db,
            "table_mappings": {"rules": rules},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    _pg_run(
        pg_target_db, ["UPDATE items SET twice = 0", "UPDATE items SET label = 'x' WHERE id = 2"]
    )
    result = validate_task(spec, store)
    items = next(t for t in result.tables if t.name == "items")
    assert [(f.key, f.type, set(f.details)) for f in items.failures] == [
        ({"id": 2}, RECORD_DIFF, {"name"})
    ]
    _pg_run(pg_target_db, ["DROP TABLE items"])
    gone = validate_task(spec, store, tables=["public.items"])
    assert gone.tables[0].state is ValidationState.ERROR
    assert "items" in gone.tables[0].message and "does not exist" in gone.tables[0].message
    assert not gone.ok


FACTS = """
CREATE TABLE facts (id bigint PRIMARY KEY, name varchar(40), amount numeric(12,2), n int,
  flag boolean, day date, at timestamp(6), atz timestamptz, ratio double precision,
  raw bytea, code uuid);
INSERT INTO facts SELECT g * 3, CASE WHEN g % 97 = 0 THEN NULL ELSE 'f' || g END,
  g * 0.37, g % 1000, g % 3 = 0, date '2020-01-01' + g % 2000,
  timestamp '2024-01-01 00:00:00.5' + g * interval '1.25 s',
  timestamptz '2024-01-01 00:00+05' + g * interval '1 min', g / 3.0, int4send(g),
  md5(g::text)::uuid
  FROM generate_series(1, 20000) g;
"""


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_checksum_bisection(
    engine: str,
    request: pytest.FixtureRequest,
    pg_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Integer keys and engine-neutral types: checksums computed in both databases find
    the damaged key ranges; only those are read row by row."""
    from opendms.validate.bisect import bisect

    target = request.getfixturevalue("pg_target_db" if engine == "postgres" else "mysql_target_db")
    _pg_run(pg_db, [FACTS])
    spec = _spec("sum", pg_db, target)
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    seen: list[Any] = []

    def spy(src: Any, dst: Any) -> Any:
        seen.append(real(src, dst))
        return seen[-1]

    real = bisect
    monkeypatch.setattr("opendms.validate.compare.bisect", spy)
    clean = validate_task(spec, store, checksums=True)
    assert clean.ok and clean.failures == []
    assert clean.tables[0].source_rows == clean.tables[0].target_rows == 20000
    assert seen[-1].ranges == []  # equal values give equal checksums on both engines
    run = _pg_run if engine == "postgres" else _mysql_run
    shift = "atz + interval '1 second'" if engine == "postgres" else "atz + INTERVAL 1 SECOND"
    run(
        target,
        [
            "UPDATE facts SET name = 'x' WHERE id = 300",
            "UPDATE facts SET amount = amount + 0.01 WHERE id = 30000",
            f"UPDATE facts SET atz = {shift} WHERE id = 45000",
            "UPDATE facts SET name = NULL WHERE id = 3",
            "DELETE FROM facts WHERE id = 59997",
            "INSERT INTO facts (id, name) VALUES (60003, 'extra')",
        ],
    )
    damaged = validate_task(spec, store, checksums=True)
    found = {f.key["id"]: (f.type, set(f.details)) for f in damaged.failures}
    assert found == {
        300: (RECORD_DIFF, {"name"}),
        30000: (RECORD_DIFF, {"amount"}),
        45000: (RECORD_DIFF, {"atz"}),
        3: (RECORD_DIFF, {"name"}),
        59997: (MISSING_TARGET, {"source"}),
        60003: (MISSING_SOURCE, {"target"}),
    }
    ranges = seen[-1].ranges
    assert 0 < sum(b - a + 1 for a, b in ranges) < 20000  # read a few segments, not all
    assert damaged.tables[0].source_rows == 20000 and damaged.tables[0].target_rows == 20000
    calls = len(seen)
    assert validate_task(spec, store).failures == damaged.failures  # the reading path agrees
    assert len(seen) == calls  # ... and computes no checksums


def test_enable_validation_and_validation_only_in_task_run(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """EnableValidation validates after the full load; ValidationOnly compares without
    loading and stops with VALIDATION_FAILED when the target differs."""

    from opendms.config import task_from_dict
    from opendms.service.run import run_task
    from opendms.state import StateStore
    from opendms.state import validation as vstate

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE v (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO v SELECT g, 'n' || g FROM generate_series(1, 100) g")
    store = StateStore(tmp_path / "state.db")

    def spec(**validation: object) -> object:
        settings = {"ValidationSettings": validation}
        body = {"name": "val", "source": pg_db, "target": pg_target_db}
        return task_from_dict({**body, "task_settings": settings}, where="test")

    run_task(spec(EnableValidation=True), store)  # type: ignore[arg-type]
    assert [s.state for s in vstate.states(store, "val")] == ["Validated"]
    with psycopg.connect(pg_target_db, autocommit=True) as conn:
        conn.execute("UPDATE v SET name = 'changed' WHERE id = 7")
        conn.execute("DELETE FROM v WHERE id = 8")
    run_task(spec(ValidationOnly=True), store)  # type: ignore[arg-type]
    task = store.task("val")
    assert task is not None and task.stop_reason == "VALIDATION_FAILED"
    found = {(f.type, f.key["id"]) for f in vstate.failures(store, "val")}
    assert found == {("RECORD_DIFF", 7), ("MISSING_TARGET", 8)}
    with psycopg.connect(pg_target_db) as conn:  # nothing was loaded
        assert conn.execute("SELECT count(*) FROM v").fetchone() == (99,)


def test_cdc_validates_the_rows_it_changes(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """EnableValidation during CDC: rows touched by changes are compared once applied; a
    row the target altered on its own (here a trigger) is reported, the others are not."""

    from opendms.config import task_from_dict
    from opendms.service.run import run_task
    from opendms.state import StateStore
    from opendms.state import validation as vstate

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE c (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO c SELECT g, 'n' || g FROM generate_series(1, 20) g")
    spec = task_from_dict(
        {
            "name": "cdcval",
            "source": pg_db,
            "target": pg_target_db,
            "migration_type": "full-load-and-cdc",
            "task_settings": {
                "ValidationSettings": {"EnableValidation": True},
                "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
            },
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    assert not vstate.failures(store, "cdcval")
    with psycopg.connect(pg_target_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION bang() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN IF NEW.id = 5 THEN NEW.name := NEW.name || '!'; END IF; RETURN NEW; END$$"
        )
        conn.execute(
            "CREATE TRIGGER bang BEFORE UPDATE ON public.c FOR EACH ROW EXECUTE FUNCTION bang()"
        )
        conn.execute("ALTER TABLE public.c ENABLE ALWAYS TRIGGER bang")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE c SET name = 'changed' WHERE id IN (5, 6)")
        conn.execute("INSERT INTO c VALUES (21, 'new')")
    run_task(spec, store)
    found = [(f.type, f.key) for f in vstate.failures(store, "cdcval")]
    assert found == [("RECORD_DIFF", {"id": 5})], found


def test_clean_million_row_migration_validates(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """A clean copy of 1M rows validates with no failure (and one changed row is found)."""

    from opendms.config import task_from_dict
    from opendms.service.run import run_task
    from opendms.state import StateStore
    from opendms.validate import validate_task

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, amount numeric(12,2), at timestamptz, "
            "note text)"
        )
        conn.execute(
            "INSERT INTO big SELECT g, g * 0.01, timestamptz '2024-01-01' + g * interval '1 s', "
            "CASE WHEN g % 10 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 1000000) g"
        )
    spec = task_from_dict({"name": "big", "source": pg_db, "target": pg_target_db}, where="t")
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    result = validate_task(spec, store)
    assert result.ok and not result.failures
    assert [(t.source_rows, t.target_rows) for t in result.tables] == [(1_000_000, 1_000_000)]
    with psycopg.connect(pg_target_db, autocommit=True) as conn:
        conn.execute("UPDATE big SET note = 'x' WHERE id = 777777")
    failures = validate_task(spec, store).failures
    assert [(f.type, f.key) for f in failures] == [("RECORD_DIFF", {"id": 777777})]
