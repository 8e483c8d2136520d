"""MySQL/MariaDB values and types carried exactly (issue 8, section 4), full load and CDC.

- decimals are checked against the target DECIMAL(M,D) by exact digit counting: the
  type's own extremes load, a value that does not fit is a data error of its row;
- MySQL TIME is a signed duration up to 838:59:59: MySQL keeps it as TIME, PostgreSQL
  as interval, the lake as ISO 8601 duration text;
- MySQL -> MySQL keeps every native column type as it was;
- a composite primary key with text columns loads, keys differing only in trailing
  spaces stay distinct, and a missing target database is created.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from opendms.assess import Status, assess
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration.specs import logging_task
from tests.support.sql import connect, execute, query

CDC = "full-load-and-cdc"
D65_30 = "99999999999999999999999999999999999.999999999999999999999999999999"


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        return [tuple(r) for r in query(conn, sql)]
    finally:
        conn.close()


def _errors(store: StateStore, task: str) -> dict[str, str]:
    """Data errors by row key: the column (full load) or the reason (CDC)."""
    return {key: column or reason for _, key, column, reason in store.data_errors(task)}


# -- decimals -------------------------------------------------------------------------

PG_NUMBERS = [
    "CREATE TABLE nums (id int PRIMARY KEY, n numeric, s numeric(40,35), w numeric(70,10))",
    f"INSERT INTO nums (id, n) VALUES (1, {D65_30}), (2, -{D65_30}), "
    "(3, 0.1234567890123456789012345678901), (4, 100000000000000000000000000000000000), "
    "(5, 1.50000000000000000000000000000000000000), (6, 12345678901234567890123456789.5)",
    f"INSERT INTO nums (id, s, w) VALUES (7, 1.5, {'1234567890' * 5}), "
    "(8, 0.12345678901234567890123456789012345, 0)",
]
DECIMALS_KEPT = {
    1: D65_30,
    2: "-" + D65_30,
    5: "1.5",
    6: "12345678901234567890123456789.5",
}


def _decimal_text(value: Any) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def test_decimals_are_checked_by_exact_digits(pg_db: str, mysql_db: str, tmp_path: Path) -> None:
    """DECIMAL(65,30)'s own extremes load; values needing more digits are row errors
    (before: the extremes were refused and a 31-fraction-digit value failed the table)."""
    execute(pg_db, PG_NUMBERS)
    store = StateStore(tmp_path / "state.db")
    run_task(logging_task("nums", pg_db, mysql_db), store)
    stats = store.tables("nums")[0]
    assert stats.state is TableState.COMPLETED
    got = {r[0]: r[1:] for r in _rows(mysql_db, "SELECT id, n, s, w FROM nums ORDER BY id")}
    assert sorted(got) == [1, 2, 5, 6, 7]
    assert {k: _decimal_text(v[0]) for k, v in got.items() if k < 7} == DECIMALS_KEPT
    assert _decimal_text(got[7][1]) == "1.5"  # numeric(40,35) -> DECIMAL(35,30)
    assert _decimal_text(got[7][2]) == "1234567890" * 5
    assert _errors(store, "nums") == {"id=3": "n", "id=4": "n", "id=8": "s"}
    types = _rows(
        mysql_db,
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'nums' ORDER BY ORDINAL_POSITION",
    )
    assert types[1:] == [("n", "decimal(65,30)"), ("s", "decimal(35,30)"), ("w", "decimal(65,10)")]


def test_decimal_changes_that_do_not_fit_are_row_errors(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """CDC: the fitting changes apply, the others are recorded, the task goes on."""
    execute(pg_db, ["CREATE TABLE nums (id int PRIMARY KEY, n numeric)"])
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("cdcnums", pg_db, mysql_db, CDC)
    run_task(spec, store)
    execute(
        pg_db,
        [
            f"INSERT INTO nums VALUES (11, {D65_30}), (12, 0.1234567890123456789012345678901), "
            "(13, 2.50)",
            "UPDATE nums SET n = 1e40 WHERE id = 13",
            "INSERT INTO nums VALUES (14, -1)",
        ],
    )
    run_task(spec, store)
    got = {r[0]: _decimal_text(r[1]) for r in _rows(mysql_db, "SELECT id, n FROM nums")}
    assert got == {11: D65_30, 13: "2.5", 14: "-1"}
    errors = {key: (column, reason) for _, key, column, reason in store.data_errors("cdcnums")}
    assert sorted(errors) == ["id=12", "id=13"]
    assert errors["id=12"][0] == "n" and "DECIMAL(65,30)" in errors["id=12"][1]


# -- MySQL TIME -------------------------------------------------------------------------

TIME_TABLE = "CREATE TABLE spans (id INT PRIMARY KEY, t TIME(6), t0 TIME)"
TIME_ROWS = [
    (1, "838:59:59.000000", "838:59:59"),
    (2, "-838:59:59.000000", "-838:59:59"),
    (3, "-12:30:00.500000", "-12:30:00"),
    (4, "10:00:00.000001", "00:00:00"),
    (5, "-00:00:00.000001", None),
    (6, None, "24:00:00"),
]
PG_TEXT = {
    1: ("838:59:59", "838:59:59"),
    2: ("-838:59:59", "-838:59:59"),
    3: ("-12:30:00.5", "-12:30:00"),
    4: ("10:00:00.000001", "00:00:00"),
    5: ("-00:00:00.000001", None),
    6: (None, "24:00:00"),
}
LAKE_TEXT = {
    1: ("P0M0DT3020399S", "P0M0DT3020399S"),
    2: ("P0M0DT-3020399S", "P0M0DT-3020399S"),
    3: ("P0M0DT-45000.5S", "P0M0DT-45000S"),
    4: ("P0M0DT36000.000001S", "P0M0DT0S"),
    5: ("P0M0DT-0.000001S", None),
    6: (None, "P0M0DT86400S"),
}


def _insert_times(url: str, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("(%s, %s, %s)" for _ in rows)
    conn = connect(url)
    try:
        query(conn, f"INSERT INTO spans VALUES {marks}", tuple(v for r in rows for v in r))
    finally:
        conn.close()


def _mysql_times(url: str) -> dict[int, tuple[Any, ...]]:
    sql = "SELECT id, CAST(t AS CHAR), CAST(t0 AS CHAR) FROM spans ORDER BY id"
    return {r[0]: r[1:] for r in _rows(url, sql)}


@pytest.fixture
def spans(mysql_db: str) -> str:
    execute(mysql_db, [TIME_TABLE])
    _insert_times(mysql_db, TIME_ROWS[:3])
    return mysql_db


def test_mysql_time_to_mysql_full_load_and_cdc(
    spans: str, mysql_target_db: str, tmp_path: Path
) -> None:
    """Before: every TIME outside 00:00-23:59 was a data error, even MySQL -> MySQL."""
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("times", spans, mysql_target_db, CDC)
    run_task(spec, store)
    _insert_times(spans, TIME_ROWS[3:])
    execute(spans, ["UPDATE spans SET t0 = '-100:00:01' WHERE id = 1"])
    run_task(spec, store)
    assert store.data_errors("times") == []
    assert _mysql_times(mysql_target_db) == _mysql_times(spans)
    assert _mysql_times(mysql_target_db)[1] == ("838:59:59.000000", "-100:00:01")


def test_mysql_time_to_postgres_interval(spans: str, pg_target_db: str, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("times", spans, pg_target_db, CDC)
    run_task(spec, store)
    _insert_times(spans, TIME_ROWS[3:])
    run_task(spec, store)
    assert store.data_errors("times") == []
    db = spans.rsplit("/", 1)[1]
    rows = _rows(pg_target_db, f'SELECT id, t::text, t0::text FROM "{db}".spans ORDER BY id')
    assert {r[0]: r[1:] for r in rows} == PG_TEXT
    types = _rows(
        pg_target_db,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'spans' "
        "AND column_name = 't'",
    )
    assert types == [("interval",)]


def test_mysql_time_to_lake_duration_text(spans: str, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("times", spans, f"file://{tmp_path}/lake?DataFormat=parquet", CDC)
    run_task(spec, store)
    _insert_times(spans, TIME_ROWS[3:])  # arrive as CDC files
    run_task(spec, store)
    assert store.data_errors("times") == []
    db = spans.rsplit("/", 1)[1]
    files = sorted((tmp_path / f"lake/{db}/spans").glob("*.parquet"))
    assert len(files) == 2  # the full load's LOAD file and one CDC file
    rows = [r for f in files for r in pq.read_table(f, columns=["id", "t", "t0"]).to_pylist()]
    assert {r["id"]: (r["t"], r["t0"]) for r in rows} == LAKE_TEXT


# -- MySQL -> MySQL keeps native types ---------------------------------------------------

NATIVE_COLUMNS = (
    "id INT NOT NULL PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT UNSIGNED, "
    "mi MEDIUMINT, miu MEDIUMINT UNSIGNED, iu INT UNSIGNED, bu BIGINT UNSIGNED, b BOOLEAN, "
    "b1 BIT(1), b5 BIT(5), ts TIMESTAMP(3) NULL, ts0 TIMESTAMP NOT NULL DEFAULT '2000-01-01', "
    "yr YEAR, vb VARBINARY(16), bn BINARY(4), st SET('a','b','c'), en ENUM('x','y'), "
    "ch CHAR(3), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, js JSON, d DOUBLE, f FLOAT, "
    "dd DECIMAL(10,2) UNSIGNED, tm TIME(2), vc VARCHAR(30), dt DATE, dtm DATETIME(6), "
    "bl BLOB, lt LONGTEXT, mb MEDIUMBLOB"
)
NATIVE_ROWS = [
    "(1, 1, 2, 3, 4, 5, 6, 7, TRUE, b'1', b'10101', '2024-02-29 12:34:56.789', "
    "'2001-01-01', 2024, x'00ff10', x'01', 'a,c', 'y', 'abc', 'tiny', 'text', 'medium', "
    "'{\"k\": [1, 2]}', 3.141592653589793, 1.5, 12345678.91, '-838:59:59.99', 'v', "
    "'2024-02-29', '1000-01-01 00:00:00.000001', x'00', 'long ✓', x'ff00')",
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "'2001-01-01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(3, -128, 255, 65535, -8388608, 16777215, 4294967295, 18446744073709551615, 127, b'0', "
    "b'11111', '2038-01-19 03:14:07.999', '1970-01-01 00:00:01', 0, x'', x'00000000', '', 'x',"
    " '', '', '', '', '[]', -1.7976931348623157e308, -3.4e38, 0, '838:59:59', '', "
    "'9999-12-31', '9999-12-31 23:59:59.999999', x'', '', x'')",
]
NATIVE_CHANGES = [
    "INSERT INTO native VALUES (4, 127, 0, 0, 8388607, 0, 0, 0, FALSE, b'1', b'00001', "
    "'1970-01-01 00:00:01.001', '2020-02-29 23:59:59', 2155, x'ff', x'ffffffff', 'b', 'x', "
    "'z', 't', 'x', 'm', 'null', 5e-324, 1e-10, 99999999.99, '00:00:00.01', 'new', "
    "'1000-01-01', '2000-02-29 00:00:00', x'0102', '😀', NULL)",
    "UPDATE native SET ti = -1, b5 = b'00010', yr = 1901, st = 'a,b,c', tm = '-00:00:00.5', "
    "ts = '2001-02-03 04:05:06.007' WHERE id = 1",
    "UPDATE native SET yr = 0 WHERE id = 2",
    "DELETE FROM native WHERE id = 3",
]


def _column_types(url: str, table: str) -> list[tuple[Any, ...]]:
    return _rows(
        url,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION",
    )


def _native_rows(url: str) -> list[tuple[Any, ...]]:
    return _rows(url, "SELECT *, CAST(tm AS CHAR), CAST(yr AS CHAR) FROM native ORDER BY id")


def test_mysql_to_mysql_keeps_native_types(
    mysql_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    """Before: TINYINT became SMALLINT, BIT(5) BIGINT, YEAR SMALLINT, SET LONGTEXT..."""
    execute(mysql_db, [f"CREATE TABLE native ({NATIVE_COLUMNS})"])
    execute(mysql_db, [f"INSERT INTO native VALUES {', '.join(NATIVE_ROWS)}"])
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("native", mysql_db, mysql_target_db, CDC)
    run_task(spec, store)
    assert _column_types(mysql_target_db, "native") == _column_types(mysql_db, "native")
    assert _native_rows(mysql_target_db) == _native_rows(mysql_db)
    execute(mysql_db, NATIVE_CHANGES)
    run_task(spec, store)
    assert store.data_errors("native") == []
    assert _native_rows(mysql_target_db) == _native_rows(mysql_db)
    assert [r[-1] for r in _native_rows(mysql_target_db)] == ["1901", "0000", "2155"]


# -- keys and databases on MySQL targets -------------------------------------------------

PAIRS = [
    "CREATE TABLE pairs (a text, b text, n int, PRIMARY KEY (a, b))",
    "INSERT INTO pairs VALUES ('x', 'y', 1), ('a', 'a ', 2), ('a ', 'a', 3), "
    f"('{'l' * 384}', 'z', 4), ('{'m' * 385}', 'z', 5)",
]


def test_composite_text_key_loads_and_keeps_keys_distinct(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """Before: CREATE TABLE failed with error 1071 (key too long); keys differing only in
    trailing spaces collided under a PAD SPACE collation."""
    execute(pg_db, PAIRS)
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("pairs", pg_db, mysql_db, CDC)
    run_task(spec, store)
    assert store.tables("pairs")[0].state is TableState.COMPLETED
    got = {(r[0], r[1]): r[2] for r in _rows(mysql_db, "SELECT a, b, n FROM pairs")}
    assert got == {("x", "y"): 1, ("a", "a "): 2, ("a ", "a"): 3, ("l" * 384, "z"): 4}
    assert _errors(store, "pairs") == {"a='" + "m" * 385 + "', b='z'": "a"}
    execute(pg_db, ["UPDATE pairs SET n = 20 WHERE a = 'a' AND b = 'a '"])
    run_task(spec, store)
    got = {(r[0], r[1]): r[2] for r in _rows(mysql_db, "SELECT a, b, n FROM pairs")}
    assert got[("a", "a ")] == 20 and got[("a ", "a")] == 3


def test_long_text_indexes_fit_and_never_refuse_distinct_rows(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """Before: a UNIQUE index on long text got a 255-character prefix (distinct values with
    equal prefixes: duplicate entry) and two VARCHAR(1000) columns exceeded the key
    length (error 1071); either failed the whole table after its rows were loaded."""
    long = "p" * 800
    execute(
        pg_db,
        [
            "CREATE TABLE docs (id int PRIMARY KEY, title text UNIQUE, a varchar(1000), "
            "b varchar(1000))",
            "CREATE INDEX docs_ab ON docs (a, b)",
            f"INSERT INTO docs VALUES (1, '{long}x', 'a', 'b'), (2, '{long}y', 'a', 'b')",
        ],
    )
    store = StateStore(tmp_path / "state.db")
    run_task(logging_task("docs", pg_db, mysql_db), store)
    assert store.tables("docs")[0].state is TableState.COMPLETED
    assert _rows(mysql_db, "SELECT id, RIGHT(title, 1) FROM docs ORDER BY id") == [
        (1, "x"),
        (2, "y"),
    ]
    indexes = _rows(
        mysql_db,
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'docs' AND INDEX_NAME <> 'PRIMARY' "
        "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    assert [(r[1], r[2], r[3]) for r in indexes] == [
        (1, "a", 384),
        (1, "b", 384),
        (1, "title", 768),
    ]


def test_missing_target_database_is_created(pg_db: str, mysql_db: str, tmp_path: Path) -> None:
    """Before: the target connection failed (unknown database), in assess and in the task."""
    execute(pg_db, ["CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)"])
    missing = mysql_db.rsplit("/", 1)[0] + "/fresh_" + uuid.uuid4().hex[:12]
    spec = logging_task("fresh", pg_db, missing, CDC)
    try:
        assert [c for c in assess(spec) if c.status is Status.FAILED] == []
        store = StateStore(tmp_path / "state.db")
        run_task(spec, store)
        execute(pg_db, ["INSERT INTO t VALUES (3)"])
        run_task(spec, store)
        assert _rows(missing, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
    finally:
        execute(mysql_db, [f"DROP DATABASE IF EXISTS {missing.rsplit('/', 1)[1]}"])


def test_negative_zero_into_mysql_is_a_data_error(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """MySQL/MariaDB DOUBLE and FLOAT store -0.0 as 0 (before: silently)."""
    execute(
        pg_db,
        [
            "CREATE TABLE z (id int PRIMARY KEY, f float8, r real)",
            "INSERT INTO z VALUES (1, '-0', 1), (2, 0, 2), (3, 1.5, '-0')",
        ],
    )
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("zeros", pg_db, mysql_db, CDC)
    run_task(spec, store)
    execute(pg_db, ["INSERT INTO z VALUES (4, '-0', 0), (5, -5, -5)"])
    run_task(spec, store)
    assert _rows(mysql_db, "SELECT id, f, r FROM z ORDER BY id") == [(2, 0.0, 2.0), (5, -5.0, -5.0)]
    assert sorted(_errors(store, "zeros")) == ["id=1", "id=3", "id=4"]
