"""Every function of the DMS guide's expression page against SQLite as the oracle.

Each expression is evaluated by opendms (an add-column rule over an Arrow batch) and by
Python's ``sqlite3`` over the same values bound as SQLite holds them (integers, reals,
text, blobs, dates and timestamps as SQLite date-time text, a decimal column with
NUMERIC affinity); the results must be equal. The target type of the added column
follows the oracle's result (integer -> int8, real -> real8, blob -> blob, else string
compared with SQLite's own CAST to TEXT). Non-deterministic functions are checked for
type and length only; DMS's own functions against the guide's description.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.mapping import evaluate_outputs, parse_table_mappings
from opendms.model import Column, ColumnType, Kind, Table

SRC = Table(
    "s",
    "t",
    (
        Column("id", ColumnType(Kind.INT64)),
        Column("i", ColumnType(Kind.INT64)),
        Column("r", ColumnType(Kind.FLOAT64)),
        Column("s", ColumnType(Kind.STRING)),
        Column("b", ColumnType(Kind.BINARY)),
        Column("d", ColumnType(Kind.DATE)),
        Column("ts", ColumnType(Kind.TIMESTAMP)),
        Column("n", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
    ),
    primary_key=("id",),
)

# Inputs: NULLs, negatives, zero, unicode, padding, edge dates (leap day, epoch, year
# 1 and 9999, end of month), fractional seconds, decimals.
ROWS: list[dict[str, Any]] = [
    {
        "i": 5,
        "r": 2.5,
        "s": "  Hello World  ",
        "b": b"\x00\xffAB",
        "d": dt.date(2024, 2, 29),
        "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
        "n": Decimal("12.50"),
    },
    {
        "i": -7,
        "r": -3.5,
        "s": "Ünïcødé ßtraße ✓",
        "b": b"",
        "d": dt.date(1970, 1, 1),
        "ts": dt.datetime(1970, 1, 1),
        "n": Decimal("-0.01"),
    },
    {
        "i": 0,
        "r": 0.1,
        "s": "",
        "b": b"x",
        "d": dt.date(1, 1, 1),
        "ts": dt.datetime(1999, 12, 31, 12, 0, 30),
        "n": Decimal("0.00"),
    },
    {
        "i": 2**62,
        "r": 1e20,
        "s": "abcde",
        "b": b"abc",
        "d": dt.date(9999, 12, 31),
        "ts": dt.datetime(2000, 1, 31, 6, 7, 8, 500000),
        "n": Decimal("99999999.99"),
    },
    {"i": None, "r": None, "s": None, "b": None, "d": None, "ts": None, "n": None},
    {
        "i": 123,
        "r": -0.5,
        "s": "x%y_z'q",
        "b": b"\x10",
        "d": dt.date(2023, 1, 31),
        "ts": dt.datetime(2023, 3, 26, 1, 30),
        "n": Decimal("7"),
    },
]


def _batch() -> pa.RecordBatch:
    arrays: dict[str, pa.Array[Any]] = {"id": pa.array(range(1, len(ROWS) + 1), pa.int64())}
    types: dict[str, pa.DataType] = {
        "i": pa.int64(),
        "r": pa.float64(),
        "s": pa.string(),
        "b": pa.binary(),
        "d": pa.date32(),
        "ts": pa.timestamp("us"),
        "n": pa.decimal128(10, 2),
    }
    for name, t in types.items():
        arrays[name] = pa.array([row[name] for row in ROWS], t)
    return pa.record_batch(arrays)


def _sqlite_form(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _oracle(expression: str, cast_text: bool = False) -> list[Any]:
    """SQLite's results over ROWS (``$x`` is the column x of a table like the source)."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE src (i, r, s, b, d, ts, n NUMERIC)")
    names = ("i", "r", "s", "b", "d", "ts", "n")
    con.executemany(
        "INSERT INTO src VALUES (?, ?, ?, ?, ?, ?, ?)",
        [tuple(_sqlite_form(row[c]) for c in names) for row in ROWS],
    )
    sql = expression
    for name in sorted(names, key=len, reverse=True):
        sql = sql.replace(f"${name}", name)
    item = f"CAST(({sql}) AS TEXT)" if cast_text else f"({sql})"
    return [row[0] for row in con.execute(f"SELECT {item} FROM src ORDER BY rowid")]


def _dms_type(values: list[Any]) -> tuple[dict[str, Any], bool]:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {int}:
        return {"type": "int8"}, False
    if kinds and kinds <= {int, float}:
        return {"type": "real8"}, False
    if kinds == {bytes}:
        return {"type": "blob"}, False
    return {"type": "string"}, True


def _opendms(expression: str, dms_type: dict[str, Any]) -> list[Any]:
    rule = {
        "rule-type": "transformation",
        "rule-id": "1",
        "rule-name": "1",
        "rule-action": "add-column",
        "rule-target": "column",
        "object-locator": {"schema-name": "s", "table-name": "t"},
        "value": "x",
        "expression": expression,
        "data-type": dms_type,
    }
    plan = parse_table_mappings({"rules": [rule]}).plan(SRC)
    out = evaluate_outputs(_batch().select(list(plan.read_columns)), plan)
    values: list[Any] = out.column("x").to_pylist()
    return values


# The guide's functions (Appendix C of tests/dms_docs/INVENTORY.md), each over columns
# and literals.
CASES = [
    # string
    "lower($s)",
    "upper($s)",
    "upper('ß') || lower('ÄB')",  # SQLite's built-ins fold ASCII only
    "ltrim($s)",
    "ltrim($s, ' H')",
    "rtrim($s)",
    "rtrim($s, ' d')",
    "trim($s)",
    "trim($s, ' Hd')",
    "replace($s, 'l', 'L')",
    "replace($s, '', 'x')",
    "replace($s, 'o', NULL)",
    "substr($s, 2, 3)",
    "substr($s, 3)",
    "substr($s, -3)",
    "substr($s, -3, 2)",
    "substr($s, 4, -2)",
    "substr($s, 0, 2)",
    "substr($b, 2, 2)",
    "$s || '_' || $i",
    "$s || $r",
    "$i || $n",
    "length($s)",
    "length($b)",
    # LOB
    "hex($b)",
    "hex($s)",
    "hex($i)",
    "hex($r)",
    "hex(NULL)",
    "zeroblob(3)",
    "zeroblob($i % 4)",
    "length(zeroblob(0))",
    "typeof(randomblob(0))",
    # numeric
    "abs($i)",
    "abs($r)",
    "abs($s)",
    "abs($n)",
    "round($r)",
    "round($r, 1)",
    "round($n, 1)",
    "round(-2.5)",
    "round(2.675, 2)",
    "round($i)",
    "max($i, $r)",
    "max($i, 3, $n)",
    "min($i, $r)",
    "min($s, 'b')",
    "max($s, $i)",
    "$i / 2",
    "$i / 0",
    "$i % 3",
    "$r * 2",
    "$n * 2",
    "$n + $i",
    "$i + '3'",
    "$s + 1",
    "CAST(2.5 AS INTEGER)",
    "CAST(-2.5 AS INTEGER)",
    "CAST($r AS INTEGER)",
    "CAST($s AS INTEGER)",
    "CAST('12abc' AS INTEGER)",
    "CAST($n AS TEXT)",
    "CAST($i AS REAL)",
    "CAST($s AS BLOB)",
    "CAST(x'414243' AS TEXT)",
    # NULL checks
    "coalesce($s, $i, 'none')",
    "coalesce($i, $r)",
    "ifnull($s, 'none')",
    "ifnull($b, x'00')",
    "nullif($i, 0)",
    "nullif($s, '')",
    # date and time
    "date($d)",
    "date($ts)",
    "date($d, '+1 day')",
    "date($d, '-1 month')",
    "date($d, '+1 year', 'start of month')",
    "date($d, 'start of year', '+45 days')",
    "date($ts, 'weekday 0')",
    "date($d, '+12 months', '-1 day')",
    "date('2024-02-30')",
    "date('not a date')",
    "date($i)",
    "time($ts)",
    "time($ts, '+90 minutes')",
    "time('12:34')",
    "datetime($d)",
    "datetime($ts)",
    "datetime($ts, '+1 hour', '-30 seconds')",
    "datetime($ts, 'start of day')",
    "datetime($i, 'unixepoch')",
    "datetime(1700000000, 'unixepoch')",
    "julianday($d)",
    "julianday($ts)",
    "julianday($ts, '+0.5 day')",
    "strftime('%d', $ts)",
    "strftime('%H', $ts)",
    "strftime('%f', $ts)",
    "strftime('%j', $ts)",
    "strftime('%J', $ts)",
    "strftime('%m', $ts)",
    "strftime('%M', $ts)",
    "strftime('%s', $ts)",
    "strftime('%S', $ts)",
    "strftime('%w', $ts)",
    "strftime('%W', $ts)",
    "strftime('%Y', $ts)",
    "strftime('%%', $ts)",
    "strftime('%Y-%m-%dT%H:%M:%f', $ts, '+1 day')",
    "strftime('%s', $d)",
    "strftime('%f', '2024-01-01 10:00:30')",
    # expressions
    "CASE WHEN $i > 0 THEN 'pos' WHEN $i < 0 THEN 'neg' ELSE 'zero' END",
    "CASE $i WHEN 5 THEN 'five' WHEN -7 THEN 'minus seven' END",
    "CASE WHEN round($r) >= 2 THEN 'SENIOR' ELSE 'JUNIOR' END",
    "iif($s LIKE '%world%', 1, 0)",
    "$s GLOB '*World*'",
    "$i BETWEEN -10 AND 10",
    "$s IS NULL",
    "$i IN (0, 5, 123)",
    "instr($s, 'o')",
    "printf('%05.1f|%s', $r, $s)",
    "quote($s)",
    "typeof($n)",
    "typeof($d)",
    "unicode($s)",
    "char(65, 246)",
]


@pytest.mark.parametrize("expression", CASES)
def test_expression_matches_sqlite(expression: str) -> None:
    raw = _oracle(expression)
    dms_type, as_text = _dms_type(raw)
    expected = _oracle(expression, cast_text=True) if as_text else raw
    assert _opendms(expression, dms_type) == expected


def test_random_and_randomblob_have_sqlite_types_and_lengths() -> None:
    numbers = _opendms("random()", {"type": "int8"})
    assert all(isinstance(v, int) for v in numbers)
    assert len(set(numbers)) > 1
    blobs = _opendms("randomblob($i % 5 + 2)", {"type": "blob"})
    assert all(isinstance(v, bytes) for v in blobs)
    assert [len(v) for v in blobs] == _oracle("length(randomblob($i % 5 + 2))")
    assert _opendms("length(randomblob(-3))", {"type": "int8"}) == [1] * len(ROWS)  # N < 1: 1


def test_hash_sha256_is_the_hex_digest_of_the_value() -> None:
    out = _opendms("hash_sha256($s)", {"type": "string", "length": 64})
    assert out == [
        None if row["s"] is None else hashlib.sha256(row["s"].encode()).hexdigest() for row in ROWS
    ]
    blobs = _opendms("hash_sha256($b)", {"type": "string", "length": 64})
    assert blobs == [
        None if row["b"] is None else hashlib.sha256(row["b"]).hexdigest() for row in ROWS
    ]
    # Numbers hash their SQLite text ('1.0e+20', '-7').
    numbers = _opendms("hash_sha256($r) = hash_sha256(CAST($r AS TEXT))", {"type": "int8"})
    assert numbers == [None if row["r"] is None else 1 for row in ROWS]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("replaceChars('abcde', 'abcd', '123')", "1231e"),  # the guide's example
        ('replaceChars("abcde","abcd","123")', "1231e"),  # as the guide prints it
        ("replaceChars('hello', 'lo', 'LO')", "heLLO"),
        ("replaceChars('hello', 'xyz', '1')", "hello"),
        ("replaceChars('héllo', 'é', 'e')", "hello"),
        ("replaceChars('abc', 'abc', '')", "abc"),
        ("replaceChars(NULL, 'a', 'b')", None),
        ("replaceChars(12345, '135', 'x')", "x2x4x"),
    ],
)
def test_replace_chars_follows_the_guide(expression: str, expected: str | None) -> None:
    assert _opendms(expression, {"type": "string"}) == [expected] * len(ROWS)


def test_operation_indicator_in_full_load_is_the_insert_value() -> None:
    out = _opendms("operation_indicator('D', 'U', 'I')", {"type": "string", "length": 50})
    assert out == ["I"] * len(ROWS)


def test_text_that_is_not_utf8_is_a_data_error_of_its_row() -> None:
    from opendms.errors import DataError

    with pytest.raises(DataError, match="not UTF-8") as info:
        _opendms("CAST($b AS TEXT)", {"type": "string"})
    assert info.value.row == "id=1"
