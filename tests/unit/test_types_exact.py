"""Exact value checks and forms of issue 8 section 4 (no rounding context anywhere)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from opendms.assess import lossy
from opendms.endpoints.mysql.engine import ENGINE as MYSQL
from opendms.endpoints.mysql.types import decimal_digits, key_lengths, to_mysql
from opendms.endpoints.mysql.values import (
    decimal_misfits,
    fits_decimal,
    parse_time,
    time_interval,
    time_text,
)
from opendms.endpoints.pyvalues import negative_zero_rows
from opendms.endpoints.sqlite.engine import ENGINE as SQLITE
from opendms.endpoints.sqlite.source import _decimal, _timestamps
from opendms.model import Column, ColumnType, Kind, T, Table

MAX_65_30 = "9" * 35 + "." + "9" * 30


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        (MAX_65_30, True),  # rounded to 28 digits by Decimal.normalize(): 1E+35, refused
        ("-" + MAX_65_30, True),
        ("0.1234567890123456789012345678901", False),  # 31 fraction digits (normalize: 28)
        ("1" + "0" * 35, False),  # 36 integer digits
        ("1.5" + "0" * 40, True),  # trailing zeros are not digits MySQL needs
        ("1E+34", True),
        ("1E+35", False),
        ("1E-30", True),
        ("1E-31", False),
        ("0E-50", True),
        ("-0.000", True),
        ("NaN", False),
        ("Infinity", False),
        ("not a number", False),
    ],
)
def test_fits_decimal_65_30_counts_digits_exactly(text: str, fits: bool) -> None:
    assert fits_decimal(text, 65, 30) is fits


def test_decimal_misfits_checks_only_what_the_arrow_type_can_exceed() -> None:
    narrow = pa.array([1, None], pa.decimal128(10, 2))
    assert decimal_misfits(narrow, 65, 30) == []
    wide = pa.array(["1.5", None, "0." + "1" * 31, MAX_65_30], pa.string())
    assert decimal_misfits(wide, 65, 30) == [2]


@pytest.mark.parametrize(
    ("precision", "scale", "mysql"),
    [
        (None, None, (65, 30)),
        (10, 2, (10, 2)),
        (65, 30, (65, 30)),
        (40, 35, (35, 30)),  # MySQL allows at most 30 fraction digits
        (70, 10, (65, 10)),  # ... and 65 digits
        (100, 0, (65, 0)),
        (3, 5, (5, 5)),  # PostgreSQL 15: scale beyond precision
        (5, -2, (7, 0)),  # ... and negative scale
    ],
)
def test_decimal_digits_within_mysql_limits(
    precision: int | None, scale: int | None, mysql: tuple[int, int]
) -> None:
    assert decimal_digits(T(Kind.DECIMAL, precision=precision, scale=scale)) == mysql


def _table(*cols: tuple[str, ColumnType], key: tuple[str, ...]) -> Table:
    return Table("s", "t", tuple(Column(n, t, nullable=False) for n, t in cols), key)


def test_key_lengths_share_innodbs_3072_bytes() -> None:
    text, number = T(Kind.STRING), T(Kind.INT32)
    assert key_lengths(_table(("a", text), key=("a",))) == {"a": 768}
    assert key_lengths(_table(("a", text), ("b", text), key=("a", "b"))) == {"a": 384, "b": 384}
    assert key_lengths(_table(("i", number), ("a", text), key=("i", "a"))) == {"a": 764}
    short = T(Kind.STRING, length=100)
    two = key_lengths(_table(("s", short), ("a", text), ("b", text), key=("s", "a", "b")))
    assert two == {"a": 334, "b": 334}  # (3072 - 400) / 2 bytes, 4 bytes a character
    assert key_lengths(_table(("s", short), ("n", number), key=("s", "n"))) == {}
    blob = T(Kind.BINARY)
    assert key_lengths(_table(("a", text), ("b", blob), key=("a", "b"))) == {"a": 384, "b": 1536}


def test_native_mysql_types_are_kept_and_bounded_in_keys() -> None:
    tiny = T(Kind.INT16, native="tinyint(3) unsigned")
    assert to_mysql(tiny) == "tinyint(3) unsigned"
    assert to_mysql(T(Kind.STRING, length=65535, native="text")) == "text"
    in_key = T(Kind.STRING, length=65535, native="text")
    assert to_mysql(in_key, in_key=True) == "VARCHAR(768)"  # no TEXT in a key
    assert to_mysql(in_key, in_key=True, key_length=300) == "VARCHAR(300)"
    assert to_mysql(T(Kind.DECIMAL, precision=40, scale=35)) == "DECIMAL(35,30)"


@pytest.mark.parametrize(
    ("text", "micros", "back"),
    [
        ("838:59:59", 3020399 * 10**6, "838:59:59.000000"),
        ("-838:59:59.999999", -(3020399 * 10**6 + 999999), "-838:59:59.999999"),
        ("-12:30:00.5", -45000500000, "-12:30:00.500000"),
        ("-00:00:00.000001", -1, "-0:00:00.000001"),
        ("00:00:00", 0, "0:00:00.000000"),
    ],
)
def test_mysql_time_text_round_trip(text: str, micros: int, back: str) -> None:
    value = parse_time(text)
    assert value == time_interval(micros)
    assert time_text(value) == back
    assert parse_time(back) == value


def test_sqlite_real_as_exact_decimal_text() -> None:
    assert _decimal(3.141592653589793) == "3.141592653589793"  # SQLite's text: 3.14159265358979
    assert _decimal(0.1 + 0.2) == "0.30000000000000004"
    assert _decimal(1e20) == "100000000000000000000"
    assert _decimal(12345678901234567) == "12345678901234567"
    assert _decimal("1.10") == "1.10"
    with pytest.raises(ValueError):
        _decimal(float("inf"))


def test_sqlite_datetime_text_with_zones_is_taken_to_utc() -> None:
    text = pa.array(
        ["2024-01-01 10:00:00+05:00", "2024-01-01T10:00:00Z", "2024-01-01 10:00", None,
         "2024-01-01 10:00:00 -0230", "2024-01-01"]
    )  # fmt: skip
    naive = _timestamps(text, pa.timestamp("us")).cast(pa.string()).to_pylist()
    assert naive == [
        "2024-01-01 05:00:00.000000",
        "2024-01-01 10:00:00.000000",
        "2024-01-01 10:00:00.000000",
        None,
        "2024-01-01 12:30:00.000000",
        "2024-01-01 00:00:00.000000",
    ]
    aware = _timestamps(text, pa.timestamp("us", tz="UTC"))
    assert aware.type == pa.timestamp("us", tz="UTC") and aware[0].as_py().hour == 5


def test_negative_zero_rows() -> None:
    assert negative_zero_rows(pa.array([0.0, -0.0, None, -1.0, 1.0])) == [1]
    assert negative_zero_rows(pa.array([-0.0], pa.float32())) == [0]


def test_assessment_knows_mysql_to_mysql_keeps_types() -> None:
    """A MySQL TIMESTAMP or TIME stays what it is on a MySQL target: nothing to warn about."""
    assert lossy(T(Kind.TIMESTAMPTZ, native="timestamp(3)"), MYSQL.lossy) is None
    assert lossy(T(Kind.INTERVAL, native="time(6)"), MYSQL.lossy) is None
    assert lossy(T(Kind.TIMESTAMPTZ), MYSQL.lossy) is not None  # from PostgreSQL: becomes DATETIME
    assert lossy(T(Kind.INTERVAL, native="time"), SQLITE.lossy) is not None  # ISO text there
