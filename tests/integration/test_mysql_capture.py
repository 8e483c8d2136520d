"""MySQL/MariaDB binlog capture against the private MariaDB: decoded values equal the
full load's, ops and keys are right, resume and purge behave."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Generator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import BinlogPosition, Change, ColumnChange, Op, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.events import ZERO_DATE
from opendms.endpoints.mysql.changesource import MySqlChangeSource, check_settings
from opendms.endpoints.mysql.conn import connect
from opendms.endpoints.mysql.source import MySQLSource
from opendms.errors import PrivilegeError, TaskError
from opendms.model import Kind, ReadPlan, T, Table, TableRef, arrow_type
from tests.support.servers import MariaDBServer
from tests.waiting import wait_until

UTC = dt.UTC

EVERYTHING = """
CREATE TABLE everything (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, flag BOOLEAN,
  f FLOAT, d DOUBLE,
  dec1 DECIMAL(12,4), dec2 DECIMAL(38,10), dec3 DECIMAL(65,30), dec0 DECIMAL(5,0),
  c CHAR(5), vc VARCHAR(20), vcl VARCHAR(300) CHARACTER SET latin1,
  t TEXT, tt TINYTEXT, mt MEDIUMTEXT, lt LONGTEXT,
  b BINARY(4), vb VARBINARY(10), bl BLOB, tb TINYBLOB, lb LONGBLOB,
  dt DATE, tm TIME, tm6 TIME(6), tm3 TIME(3),
  ts DATETIME, ts6 DATETIME(6), ts2 DATETIME(2), tz TIMESTAMP(6) NULL, tz0 TIMESTAMP NULL,
  yr YEAR, bit1 BIT(1), bit10 BIT(10), bit63 BIT(63),
  e ENUM('sad','ok','happy'), st SET('a','b','c'), js JSON, u UUID
) CHARSET utf8mb4
"""

ROW1 = {
    "id": 1,
    "ti": -128,
    "tiu": 255,
    "si": -32768,
    "siu": 65535,
    "mi": -8388608,
    "miu": 16777215,
    "i": -2147483648,
    "iu": 4294967295,
    "bi": -9223372036854775808,
    "biu": Decimal("18446744073709551615"),
    "flag": 1,
    "f": 1.5,
    "d": 3.141592653589793,
    "dec1": Decimal("-99999999.9999"),
    "dec2": Decimal("1234567890123456789012345678.0123456789"),
    "dec3": Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
    "dec0": Decimal("-99999"),
    "c": "abcde",
    "vc": "héllo 𝄞 😀",
    "vcl": "café",
    "t": "text\n\\ 'quote\" \t",
    "tt": "",
    "mt": "m" * 300,
    "lt": "ünïcödé ✓ 𠜎",
    "b": b"\x00\xff\x00\x00",
    "vb": b"\x00\x01\xff",
    "bl": b"",
    "tb": b"\x00",
    "lb": bytes(range(256)) * 4,
    "dt": dt.date(1000, 1, 1),
    "tm": "838:59:59",  # a MySQL TIME is a signed duration
    "tm6": "-12:34:56.789012",
    "tm3": "-00:00:00.500",
    "ts": dt.datetime(9999, 12, 31, 23, 59, 59),
    "ts6": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "ts2": dt.datetime(2024, 2, 29, 1, 2, 3, 450000),
    "tz": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
    "tz0": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    "yr": 2155,
    "bit1": True,
    "bit10": 1023,
    "bit63": 2**63 - 1,
    "e": "happy",
    "st": "a,c",
    "js": '{"a": [1, 2, {"b": null}], "u": "𝄞"}',
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
}
ROW2 = {name: (2 if name == "id" else None) for name in ROW1}
TIMES = ("tm", "tm6", "tm3")


def _interval(text: str | None) -> Any:
    """MySQL TIME text as the canonical value: an interval of nanoseconds."""
    if text is None:
        return None
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micros = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 10**6
    micros += int(fraction.ljust(6, "0"))
    return pa.MonthDayNano([0, 0, sign * micros * 1000])  # type: ignore[call-arg, arg-type]


def _canonical(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _interval(v) if k in TIMES else v for k, v in row.items()}


ROW3 = {
    **ROW1,
    "id": 3,
    "ti": 127,
    "tiu": 0,
    "si": 32767,
    "mi": 8388607,
    "i": 2147483647,
    "iu": 0,
    "bi": 9223372036854775807,
    "biu": Decimal("0"),
    "flag": 0,
    "f": -3.4028234663852886e38,
    "d": 5e-324,
    "dec1": Decimal("0.0000"),
    "dec2": Decimal("-0.0000000001"),
    "dec3": Decimal("0.000000000000000000000000000001"),
    "dec0": Decimal("0"),
    "c": "",
    "vc": "",
    "b": b"\x00\x00\x00\x00",
    "dt": dt.date(9999, 12, 31),
    "tm": "00:00:00",
    "tm3": "-838:59:59.000",
    "ts": dt.datetime(1000, 1, 1, 0, 0, 0),
    "ts2": dt.datetime(2024, 2, 29, 1, 2, 3, 10000),
    "tz": dt.datetime(1970, 1, 2, 0, 0, 0, tzinfo=UTC),
    "yr": 1901,
    "bit1": False,
    "bit10": 0,
    "bit63": 0,
    "e": "sad",
    "st": "",
    "js": "[]",
    "u": "00000000-0000-0000-0000-000000000000",
}


def _execute(url: str, *statements: str, args: Any = None) -> None:
    conn = connect(EndpointURL.parse(url))
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql, args)
    finally:
        conn.close()


def _insert(url: str, table: str, row: dict[str, Any]) -> None:
    names = ", ".join(f"`{k}`" for k in row)
    marks = ", ".join(["%s"] * len(row))
    _execute(url, f"INSERT INTO {table} ({names}) VALUES ({marks})", args=list(row.values()))


def _capture(url: str, *tables: str, task: str = "test") -> MySqlChangeSource:
    endpoint = EndpointURL.parse(url)
    capture = MySqlChangeSource(endpoint, f"{task}-{endpoint.database}")
    capture.prepare([TableRef(endpoint.database, t) for t in tables])
    return capture


def _drain(
    capture: MySqlChangeSource, start: BinlogPosition, limit: float = 30
) -> list[Transaction]:
    """Every transaction after ``start`` until the stream is caught up."""
    stop = threading.Event()
    stream = capture.stream(start, stop)
    out: list[Transaction] = []
    deadline = time.monotonic() + limit
    try:
        for item in stream:
            if item is not None:
                out.append(item)
            if capture.caught_up():
                return out
            assert time.monotonic() < deadline, "the stream did not catch up"
    finally:
        stream.close()
        capture.close()
    return out


def _changes(txns: list[Transaction]) -> list[Change]:
    return [c for t in txns for c in t.changes]


def _position(capture: MySqlChangeSource) -> BinlogPosition:
    pos = capture.current_position()
    assert isinstance(pos, BinlogPosition)
    return pos


def _describe(url: str, table: str) -> Table:
    endpoint = EndpointURL.parse(url)
    source = MySQLSource(endpoint)
    try:
        return source.describe(TableRef(endpoint.database, table))
    finally:
        source.close()


def _full_load(url: str, table: str) -> dict[int, dict[str, Any]]:
    """The rows as the full load reads them (MySQLSource, canonical Arrow)."""
    endpoint = EndpointURL.parse(url)
    source = MySQLSource(endpoint)
    try:
        described = source.describe(TableRef(endpoint.database, table))
        plan = ReadPlan(described, tuple(c.name for c in described.columns))
        rows = pa.Table.from_batches(list(source.read(plan, None))).to_pylist()
    finally:
        source.close()
    return {row["id"]: row for row in rows}


def _same(got: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    """Value by value, so a failure names the row and column."""
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        assert list(got[key]) == list(row)
        for name, value in row.items():
            assert (key, name, got[key][name]) == (key, name, value)
            assert type(got[key][name]) is type(value), (key, name)


@pytest.fixture
def everything(mysql_db: str) -> str:
    _execute(mysql_db, EVERYTHING)
    return mysql_db


def test_every_type_decodes_as_the_full_load_reads_it(everything: str) -> None:
    capture = _capture(everything, "everything")
    start = _position(capture)
    for row in (ROW1, ROW2, ROW3):
        _insert(everything, "everything", row)
    changes = _changes(_drain(capture, start))
    assert [c.op for c in changes] == [Op.INSERT] * 3
    decoded = {c.values[0]: dict(zip(c.columns, c.values, strict=True)) for c in changes}
    _same(decoded, {1: _canonical(ROW1), 2: _canonical(ROW2), 3: _canonical(ROW3)})
    _same(decoded, _full_load(everything, "everything"))
    table = _describe(everything, "everything")
    for row in decoded.values():  # the canonical Python form: an Arrow round trip keeps it
        for name, value in row.items():
            array: Any = pa.array([value], arrow_type(table.column(name).type))
            carried = array.to_pylist()
            assert carried == [value], name
    assert all(c.schema == EndpointURL.parse(everything).database for c in changes)


def test_update_delete_keys_and_transactions(mysql_db: str) -> None:
    _execute(
        mysql_db,
        "CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(20), bal DECIMAL(10,2))",
        "CREATE TABLE nokey (a INT, b VARCHAR(5))",
        "INSERT INTO acct VALUES (1, 'one', 1.50), (2, 'two', 2.00), (3, 'three', 3.25)",
        "INSERT INTO nokey VALUES (1, 'x'), (2, NULL)",
    )
    capture = _capture(mysql_db, "acct", "nokey")
    start = _position(capture)
    conn = connect(EndpointURL.parse(mysql_db))
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE acct SET bal = bal + 1 WHERE id = 1")
            cur.execute("UPDATE acct SET id = 10, name = NULL WHERE id = 2")  # key change
            cur.execute("DELETE FROM acct WHERE id = 3")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO acct VALUES (4, 'four', -4.04)")
            cur.execute("UPDATE nokey SET b = 'y' WHERE a = 2")
            cur.execute("DELETE FROM nokey WHERE a = 1")
            cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO acct VALUES (5, 'gone', 0)")
            cur.execute("ROLLBACK")
    finally:
        conn.close()
    txns = [t for t in _drain(capture, start) if t.changes]
    assert [len(t.changes) for t in txns] == [1, 1, 1, 3]
    acct, nokey = _st(mysql_db, "acct"), _st(mysql_db, "nokey")
    cols = ("id", "name", "bal")
    assert [c for t in txns for c in t.changes] == [
        Change(Op.UPDATE, *acct, cols, (1, "one", Decimal("2.50")), ("id",), (1,)),
        Change(Op.UPDATE, *acct, cols, (10, None, Decimal("2.00")), ("id",), (2,)),
        Change(Op.DELETE, *acct, key_columns=("id",), key=(3,)),
        Change(Op.INSERT, *acct, cols, (4, "four", Decimal("-4.04"))),
        Change(Op.UPDATE, *nokey, ("a", "b"), (2, "y"), ("a", "b"), (2, None)),
        Change(Op.DELETE, *nokey, key_columns=("a", "b"), key=(1, "x")),
    ]
    ends = [t.end for t in txns]
    assert ends == sorted(ends) and all(isinstance(e, BinlogPosition) for e in ends)
    assert all(e.gtid for e in ends if isinstance(e, BinlogPosition))
    assert all(abs((dt.datetime.now(UTC) - t.commit_time).total_seconds()) < 600 for t in txns)


def _st(url: str, table: str) -> tuple[str, str]:
    return EndpointURL.parse(url).database, table


def test_other_tables_advance_the_position_without_changes(mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE mine (id INT PRIMARY KEY)", "CREATE TABLE other (id INT)")
    capture = _capture(mysql_db, "mine")
    start = _position(capture)
    _execute(mysql_db, "INSERT INTO other VALUES (1)", "INSERT INTO mine VALUES (7)")
    txns = _drain(capture, start)
    assert [[(c.op, c.table, c.values) for c in t.changes] for t in txns][-2:] == [
        [],
        [(Op.INSERT, "mine", (7,))],
    ]
    assert txns[-1].end == _position(capture)


def test_truncate_and_column_ddl(mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT, c CHAR(3))")
    capture = _capture(mysql_db, "t")
    start = _position(capture)
    _execute(
        mysql_db,
        "INSERT INTO t VALUES (1, 1, 'x', 'abc')",
        "TRUNCATE TABLE t",
        "ALTER TABLE t ADD COLUMN n DECIMAL(8,3) NOT NULL DEFAULT 0 AFTER a, "
        "ADD COLUMN u BIGINT UNSIGNED",
        "ALTER TABLE t DROP COLUMN b",
        "ALTER TABLE t MODIFY COLUMN a BIGINT NULL",
        "ALTER TABLE t CHANGE COLUMN c code VARCHAR(10) NOT NULL",
        "ALTER TABLE t RENAME COLUMN code TO kode",
        "INSERT INTO t VALUES (2, 5000000000, 1.5, 'k', 18446744073709551615)",
    )
    changes = _changes(_drain(capture, start))
    schema = EndpointURL.parse(mysql_db).database
    ddl = [c.ddl for c in changes if c.op is Op.DDL]
    assert [c.op for c in changes] == [Op.INSERT, Op.TRUNCATE] + [Op.DDL] * 5 + [Op.INSERT]
    assert changes[1] == Change(Op.TRUNCATE, schema, "t")
    assert ddl == [
        (
            ColumnChange(
                "add",
                "n",
                T(Kind.DECIMAL, precision=8, scale=3, native="decimal(8,3)"),
                nullable=False,
            ),
            ColumnChange(
                "add", "u", T(Kind.DECIMAL, precision=20, scale=0, native="bigint unsigned")
            ),
        ),
        (ColumnChange("drop", "b"),),
        (ColumnChange("alter_type", "a", T(Kind.INT64, native="bigint")),),
        (
            ColumnChange("rename", "c", new_name="code"),
            ColumnChange(
                "alter_type",
                "code",
                T(Kind.STRING, length=10, native="varchar(10)"),
                nullable=False,
            ),
        ),
        (ColumnChange("rename", "code", new_name="kode"),),
    ]
    last = changes[-1]
    assert dict(zip(last.columns, last.values, strict=True)) == {
        "id": 2,
        "a": 5000000000,
        "n": Decimal("1.500"),
        "kode": "k",
        "u": Decimal("18446744073709551615"),
    }


def test_resume_from_file_position_and_from_gtid(mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE r (id INT PRIMARY KEY)")
    capture = _capture(mysql_db, "r")
    start = _position(capture)
    for i in range(1, 6):
        _execute(mysql_db, f"INSERT INTO r VALUES ({i})")
    txns = [t for t in _drain(capture, start) if t.changes]
    assert [t.changes[0].values for t in txns] == [(1,), (2,), (3,), (4,), (5,)]
    saved = txns[1].end
    assert isinstance(saved, BinlogPosition) and saved.gtid
    by_gtid = BinlogPosition.parse(str(saved))
    by_file = BinlogPosition.parse(f"{saved.file}:{saved.offset}")
    for resume in (by_gtid, by_file):
        again = [t for t in _drain(_capture(mysql_db, "r"), resume) if t.changes]
        assert [t.changes[0].values for t in again] == [(3,), (4,), (5,)]
        assert [t.end for t in again] == [t.end for t in txns[2:]]
        assert [str(t.end) for t in again] == [str(t.end) for t in txns[2:]]


def test_purged_binlog_is_a_task_error_naming_the_position(
    mariadb_server: MariaDBServer, mysql_db: str
) -> None:
    _execute(mysql_db, "CREATE TABLE p (id INT PRIMARY KEY)")
    capture = _capture(mysql_db, "p")
    _execute(mysql_db, "FLUSH BINARY LOGS")
    start = _position(capture)
    _execute(mysql_db, "INSERT INTO p VALUES (1)", "FLUSH BINARY LOGS")
    _purge_to(mariadb_server, _position(capture).file)
    for resume in (start, BinlogPosition(start.file_number, start.offset, start.file)):
        with pytest.raises(TaskError) as info:
            _drain(_capture(mysql_db, "p"), resume)
        assert f"binlog {start.file}:{start.offset} is no longer on the server (purged)" in str(
            info.value
        )


def _purge_to(server: MariaDBServer, file: str) -> None:
    """PURGE BINARY LOGS, retried: MariaDB keeps a binlog until its binlog checkpoint
    (the InnoDB log flush, once a second here) has passed it."""

    def purged() -> bool:
        server.execute(f"PURGE BINARY LOGS TO '{file}'")
        return bool(server.execute("SHOW BINARY LOGS")[0][0] == file)

    wait_until(purged, 20, f"the binlogs before {file} to be purged", 0.2)


def test_undecodable_rows_are_error_changes_naming_the_column(mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE z (id INT PRIMARY KEY, d DATE, ts DATETIME, b BIT(64))")
    capture = _capture(mysql_db, "z")
    start = _position(capture)
    _execute(
        mysql_db,
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        "INSERT INTO z VALUES (1, '2024-01-01', NULL, 1), (2, '2024-01-02', '2024-05-00 10:00:00',"
        " 2), (3, '2024-02-30', NULL, 3), (4, NULL, NULL, b'1' << 63), (5, NULL, NULL, 5)",
        "INSERT INTO z VALUES (6, '0000-00-00', NULL, 6)",
        "INSERT INTO z VALUES (7, '2024-01-07', NULL, 7)",
    )
    txns = _drain(capture, start)
    assert [[c.values[0] for c in t.changes] for t in txns if t.changes] == [
        [1, 2, 3, 4, 5],
        [6],
        [7],
    ]
    changes = _changes(txns)
    assert [(c.values[0], c.error_column(), c.error) for c in changes if c.error] == [
        (2, "ts", f"column ts: {ZERO_DATE}"),
        (3, "d", "column d: invalid date (day is out of range for month)"),
        (4, "b", f"column b: BIT value {1 << 63} does not fit a 64-bit signed integer"),
        (6, "d", f"column d: {ZERO_DATE}"),
    ]
    assert [c.values for c in changes if c.values[0] in (1, 5, 7)] == [
        (1, dt.date(2024, 1, 1), None, 1),
        (5, None, None, 5),
        (7, dt.date(2024, 1, 7), None, 7),
    ]
    bad = {c.values[0]: c.values for c in changes if c.error}
    assert bad[2][2] == "2024-05-00 10:00:00" and bad[3][1] == "2024-02-30"
    assert bad[6][1] == "0000-00-00" and bad[4][3] == 1 << 63


def test_compressed_binlog_events(mariadb_server: MariaDBServer, mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE cz (id INT PRIMARY KEY, body TEXT, z TEXT COMPRESSED)")
    capture = _capture(mysql_db, "cz")
    start = _position(capture)
    body = "compress me " * 50
    mariadb_server.execute("SET GLOBAL log_bin_compress = ON")
    try:
        _execute(
            mysql_db, "INSERT INTO cz VALUES (1, %s, %s), (2, 'short', NULL)", args=[body, body]
        )
        _execute(mysql_db, "UPDATE cz SET body = 'b' WHERE id = 1")
    finally:
        mariadb_server.execute("SET GLOBAL log_bin_compress = OFF")
    changes = _changes(_drain(capture, start))
    assert [(c.op, c.values) for c in changes] == [
        (Op.INSERT, (1, body, body)),
        (Op.INSERT, (2, "short", None)),
        (Op.UPDATE, (1, "b", body)),
    ]


def test_caught_up_and_idle_ticks(mysql_db: str) -> None:
    _execute(mysql_db, "CREATE TABLE idle (id INT PRIMARY KEY)")
    capture = _capture(mysql_db, "idle")
    start = _position(capture)
    stop = threading.Event()
    stream: Generator[Transaction | None] = capture.stream(start, stop)
    try:
        first = next(stream)
        assert first is None and capture.caught_up()  # nothing to read: idle at once
        _execute(mysql_db, "INSERT INTO idle VALUES (1)")
        item = next(stream)
        while item is None or not item.changes:
            item = next(stream)
        assert item.changes[0].values == (1,)
    finally:
        stop.set()
        stream.close()
        capture.close()


def test_prepare_reports_missing_privileges(mariadb_server: MariaDBServer, mysql_db: str) -> None:
    mariadb_server.execute("CREATE USER IF NOT EXISTS 'lowcdc'@'%' IDENTIFIED BY 'pw'")
    mariadb_server.execute("GRANT SELECT ON *.* TO 'lowcdc'@'%'")
    url = mariadb_server.url(EndpointURL.parse(mysql_db).database, "lowcdc", "pw")
    with pytest.raises(PrivilegeError) as info:
        _capture(url, "x")
    text = str(info.value)
    assert "REPLICATION SLAVE is missing" in text and "BINLOG MONITOR" in text
    assert "pw@" not in text


def test_check_settings_names_each_wrong_setting() -> None:
    good = {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "server_id": "1",
    }
    assert check_settings(good, ["GRANT ALL PRIVILEGES ON *.* TO `u`@`%`"]) == []
    bad = {**good, "binlog_format": "STATEMENT", "server_id": "0", "log_bin": "OFF"}
    del bad["binlog_row_metadata"]
    problems = check_settings(bad, ["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`"])
    assert [p.split(":")[0] for p in problems] == [
        "log_bin is OFF, needs ON",
        "binlog_format is STATEMENT, needs ROW",
        "binlog_row_metadata does not exist on this server (too old?)",
        "server_id is 0",
    ]
    assert "SET GLOBAL binlog_format = 'ROW'" in problems[1]
    assert check_settings(good, ["GRANT SELECT ON *.* TO `u`@`%`"]) == [
        "privilege REPLICATION SLAVE is missing: GRANT REPLICATION SLAVE ON *.* TO ...",
        "privilege REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR) is missing: "
        "GRANT REPLICATION CLIENT ON *.* TO ...",
    ]
    roles = ["GRANT USAGE ON *.* TO `u`@`%`", "GRANT `cdc` TO `u`@`%`"]
    assert check_settings(good, roles) == []  # privileges through a role: not second-guessed
