"""Regression tests for the table-mapping review: lossy casts and SQLite LIKE."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.errors import DataError
from opendms.mapping import TablePlan, evaluate_outputs, parse_table_mappings
from opendms.mapping._cast import cast_exact
from opendms.model import Column, ColumnType, Kind, Table, arrow_type


def change_type(column: str, dms_type: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": 1,
        "rule-name": "1",
        "rule-action": "change-data-type",
        "rule-target": "column",
        "object-locator": {"schema-name": "s", "table-name": "t", "column-name": column},
        "data-type": dms_type,
    }


def add_column(expression: str, dms_type: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": 2,
        "rule-name": "2",
        "rule-action": "add-column",
        "rule-target": "column",
        "object-locator": {"schema-name": "s", "table-name": "t"},
        "value": "x",
        "expression": expression,
        "data-type": dms_type,
    }


def keyed_table(ctype: ColumnType) -> Table:
    return Table("s", "t", (Column("id", ColumnType(Kind.INT64)), Column("v", ctype)), ("id",))


def plan(table: Table, *rules: dict[str, Any]) -> TablePlan:
    return parse_table_mappings({"rules": list(rules)}).plan(table)


def run(p: TablePlan, values: pa.Array[Any]) -> pa.RecordBatch:
    ids = pa.array(range(1, len(values) + 1), pa.int64())
    source = pa.record_batch({"id": ids, "v": values})
    return evaluate_outputs(source.select(list(p.read_columns)), p)


# -- 1. lossy change-data-type casts ------------------------------------------


@pytest.mark.parametrize(
    ("source", "dms_type", "values", "row", "fragment"),
    [
        (  # real8 -> real4: 0.1 would become 0.10000000149011612
            ColumnType(Kind.FLOAT64),
            {"type": "real4"},
            pa.array([0.5, None, 0.1]),
            "id=3",
            "0.10000000149011612",
        ),
        (  # still rejected: a finite value that overflows real4
            ColumnType(Kind.FLOAT64),
            {"type": "real4"},
            pa.array([0.5, 1e300, 0.1]),
            "id=2",
            "inf",
        ),
        (  # numeric(30,2) -> real8: 1234567890123456789.25 would become 1.23...e18
            ColumnType(Kind.DECIMAL, precision=30, scale=2),
            {"type": "real8"},
            pa.array([Decimal("1.25"), Decimal("1234567890123456789.25")], pa.decimal128(30, 2)),
            "id=2",
            "1.2345678901234568e+18",
        ),
        (  # numeric(10,2) -> real4: 16777217 has no float32 (24-bit mantissa)
            ColumnType(Kind.DECIMAL, precision=10, scale=2),
            {"type": "real4"},
            pa.array([Decimal("0.50"), Decimal("16777217.00")], pa.decimal128(10, 2)),
            "id=2",
            "16777216.0",
        ),
        (  # numeric(10,2) -> real4 -> numeric(10,2) overflows: the first such row is named
            ColumnType(Kind.DECIMAL, precision=10, scale=2),
            {"type": "real4"},
            pa.array([Decimal("0.50"), None, Decimal("99999999.99")], pa.decimal128(10, 2)),
            "id=3",
            "100000000.0",
        ),
        (  # an earlier altered row is named before a later one that overflows back
            ColumnType(Kind.DECIMAL, precision=10, scale=2),
            {"type": "real4"},
            pa.array([Decimal("16777217.00"), Decimal("99999999.99")], pa.decimal128(10, 2)),
            "id=1",
            "16777216.0",
        ),
    ],
)
def test_lossy_float_casts_raise_data_error(
    source: ColumnType, dms_type: dict[str, Any], values: pa.Array[Any], row: str, fragment: str
) -> None:
    p = plan(keyed_table(source), change_type("v", dms_type))
    with pytest.raises(DataError, match="would become") as info:
        run(p, values)
    assert info.value.row == row
    assert info.value.table == "s.t"
    assert "column v" in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("source", "dms_type", "values", "expected"),
    [
        (
            ColumnType(Kind.FLOAT64),
            {"type": "real4"},
            pa.array([0.5, -2.25, None, float("nan"), float("inf"), -0.0]),
            [0.5, -2.25, None, "nan", float("inf"), -0.0],
        ),
        (
            ColumnType(Kind.FLOAT32),
            {"type": "real8"},
            pa.array([0.1, None], pa.float32()),
            [0.10000000149011612, None],
        ),
        (
            ColumnType(Kind.DECIMAL, precision=30, scale=2),
            {"type": "real8"},
            pa.array([Decimal("0.10"), Decimal("-123.45"), None], pa.decimal128(30, 2)),
            [0.1, -123.45, None],
        ),
        (
            ColumnType(Kind.DECIMAL, precision=10, scale=2),
            {"type": "real4"},
            pa.array([Decimal("0.50"), Decimal("16777216.00")], pa.decimal128(10, 2)),
            [0.5, 16777216.0],
        ),
    ],
)
def test_exact_float_casts_pass(
    source: ColumnType, dms_type: dict[str, Any], values: pa.Array[Any], expected: list[Any]
) -> None:
    p = plan(keyed_table(source), change_type("v", dms_type))
    out = run(p, values).column("v").to_pylist()
    assert ["nan" if v is not None and v != v else v for v in out] == expected


TS = ColumnType(Kind.TIMESTAMP)


@pytest.mark.parametrize(
    ("precision", "values", "row"),
    [
        (0, [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 500000)], "id=2"),
        (
            3,
            [dt.datetime(2024, 1, 2, 3, 4, 5, 123000), dt.datetime(2024, 1, 2, 3, 4, 5, 1)],
            "id=2",
        ),
        (0, [dt.datetime(1969, 12, 31, 23, 59, 59, 500000), None], "id=1"),  # before 1970
    ],
)
def test_datetime_precision_rejects_extra_fractional_digits(
    precision: int, values: list[dt.datetime | None], row: str
) -> None:
    p = plan(keyed_table(TS), change_type("v", {"type": "datetime", "precision": precision}))
    with pytest.raises(DataError, match="fractional-second digits") as info:
        run(p, pa.array(values, pa.timestamp("us")))
    assert info.value.row == row
    assert "column v" in str(info.value)


@pytest.mark.parametrize(
    ("precision", "values"),
    [
        (0, [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(1969, 12, 31, 23, 59, 59), None]),
        (3, [dt.datetime(2024, 1, 2, 3, 4, 5, 123000), dt.datetime(1969, 12, 31, 0, 0, 0, 1000)]),
        (6, [dt.datetime(2024, 1, 2, 3, 4, 5, 123456)]),
        (9, [dt.datetime(2024, 1, 2, 3, 4, 5, 123456)]),
    ],
)
def test_datetime_precision_keeps_values_that_fit(
    precision: int, values: list[dt.datetime | None]
) -> None:
    p = plan(keyed_table(TS), change_type("v", {"type": "datetime", "precision": precision}))
    assert run(p, pa.array(values, pa.timestamp("us"))).column("v").to_pylist() == values


def test_datetime_precision_applies_to_add_column_results() -> None:
    table = keyed_table(ColumnType(Kind.STRING))
    p = plan(table, add_column("$v", {"type": "datetime", "precision": 0}))
    good = pa.array(["2024-01-02 03:04:05", None])
    assert run(p, good).column("x").to_pylist() == [dt.datetime(2024, 1, 2, 3, 4, 5), None]
    with pytest.raises(DataError, match="fractional-second digits") as info:
        run(p, pa.array(["2024-01-02 03:04:05", "2024-01-02 03:04:05.25"]))
    assert info.value.row == "id=2"


@pytest.mark.parametrize("kind", [Kind.TIME, Kind.TIMESTAMPTZ])
def test_time_and_timestamptz_precision(kind: Kind) -> None:
    if kind is Kind.TIME:
        values: list[Any] = [dt.time(1, 2, 3, 100000), dt.time(1, 2, 3, 120000)]
    else:
        utc = dt.UTC
        values = [
            dt.datetime(2024, 1, 2, 0, 0, 0, 100000, utc),
            dt.datetime(2024, 1, 2, 0, 0, 0, 120000, utc),
        ]
    ctype = ColumnType(kind, precision=2)
    to_type = arrow_type(ctype)
    array = pa.array(values, to_type)
    label = lambda i: f"index {i}"  # noqa: E731
    assert cast_exact(array, ctype, to_type, table="s.t", column="c", label=label) is array
    one = ColumnType(kind, precision=1)
    with pytest.raises(DataError, match="more than 1 fractional-second digits") as info:
        cast_exact(array, one, to_type, table="s.t", column="c", label=label)
    assert info.value.row == "index 1"


# -- 2. LIKE is case-insensitive (ASCII) as in SQLite -------------------------

LIKE_CASES = [
    "'Abc' LIKE 'a%'",
    "'abc' LIKE 'A_C'",
    "'Abc' NOT LIKE 'a%'",
    "'xyz' NOT LIKE 'A%'",
    "'A%c' LIKE 'a!%%' ESCAPE '!'",
    "'Abc' NOT LIKE 'A!%%' ESCAPE '!'",
    "like('a%', 'ABC')",
    "'Abc' GLOB 'a*'",
    "'abc' GLOB 'a*'",
    "'Abc' NOT GLOB 'a*'",
    "NULL LIKE 'a'",
]


@pytest.mark.parametrize("expression", LIKE_CASES)
def test_like_matches_sqlite(expression: str) -> None:
    with sqlite3.connect(":memory:") as con:
        expected = con.execute(f"SELECT {expression}").fetchone()[0]
    table = keyed_table(ColumnType(Kind.STRING))
    p = plan(table, add_column(expression, {"type": "int4"}))
    out = run(p, pa.array(["ignored"])).column("x").to_pylist()
    assert out == [expected]


def test_like_with_column_references() -> None:
    table = keyed_table(ColumnType(Kind.STRING))
    p = plan(table, add_column("iif($v LIKE 'jo%', 'y', 'n')", {"type": "string"}))
    values = pa.array(["John", "JOANNA", "bob", None, "jo"])
    assert run(p, values).column("x").to_pylist() == ["y", "y", "n", "n", "y"]
