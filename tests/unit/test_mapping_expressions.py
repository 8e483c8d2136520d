"""Expressions and producing target batches (in-memory DuckDB only)."""

from __future__ import annotations

import datetime as dt
import itertools
import pickle
import re
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.errors import ConfigError, DataError
from opendms.mapping import (
    TablePlan,
    evaluate_outputs,
    parse_table_mappings,
    referenced_columns,
    validate_expression,
)
from opendms.mapping.expressions import Truncation, compiled
from opendms.model import Column, ColumnType, Kind, Table, arrow_type

SRC = Table(
    "s",
    "t",
    (
        Column("id", ColumnType(Kind.INT64)),
        Column("a", ColumnType(Kind.INT32)),
        Column("b", ColumnType(Kind.INT32)),
        Column("f", ColumnType(Kind.FLOAT64)),
        Column("s", ColumnType(Kind.STRING)),
        Column("d", ColumnType(Kind.DATE)),
    ),
    primary_key=("id",),
)


def batch(**overrides: pa.Array[Any]) -> pa.RecordBatch:
    columns: dict[str, pa.Array[Any]] = {
        "id": pa.array([1, 2, 3], pa.int64()),
        "a": pa.array([5, 7, None], pa.int32()),
        "b": pa.array([2, 0, 4], pa.int32()),
        "f": pa.array([1.25, -2.5, None], pa.float64()),
        "s": pa.array(["alpha", None, "a_b"]),
        "d": pa.array([dt.date(2024, 2, 29), dt.date(1999, 12, 31), None], pa.date32()),
    }
    columns.update(overrides)
    return pa.record_batch(columns)


def rule(rid: int, action: str, column: str | None = None, **extra: Any) -> dict[str, Any]:
    locator = {"schema-name": "s", "table-name": "t"}
    if column is not None:
        locator["column-name"] = column
    return {
        "rule-type": "transformation",
        "rule-id": rid,
        "rule-name": str(rid),
        "rule-action": action,
        "rule-target": "column",
        "object-locator": locator,
        **extra,
    }


def add(expression: str | None, dms_type: dict[str, Any], name: str = "x") -> dict[str, Any]:
    extra: dict[str, Any] = {"value": name, "data-type": dms_type}
    if expression is not None:
        extra["expression"] = expression
    return rule(next(_IDS), "add-column", **extra)


_IDS = itertools.count(100)


def plan(*rules: dict[str, Any], table: Table = SRC) -> TablePlan:
    return parse_table_mappings({"rules": list(rules)}).plan(table)


def _data_address(column: pa.Array[Any]) -> int:
    """Where a fixed-width column's values live in memory."""
    data = column.buffers()[1]
    assert data is not None
    return data.address


def run(p: TablePlan, source: pa.RecordBatch | None = None) -> pa.RecordBatch:
    source = source or batch()
    return evaluate_outputs(source.select(list(p.read_columns)), p)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$FIRST_NAME||'_'||$LAST_NAME", ("FIRST_NAME", "LAST_NAME")),
        ("$a + $a * $b", ("a", "b")),
        ("'$not_a_ref' || $s", ("s",)),
        ("'it''s $x' || $y", ("y",)),
        ('"$quoted" || $z -- $comment', ("z",)),
        ("/* $c */ $d", ("d",)),
        ("upper($Straße)", ("Straße",)),
        ("1 + 2", ()),
    ],
)
def test_referenced_columns(expression: str, expected: tuple[str, ...]) -> None:
    assert referenced_columns(expression) == expected


@pytest.mark.parametrize(
    ("expression", "dms_type", "expected"),
    [
        ("$s||'-'||$a", {"type": "string", "length": 50}, ["alpha-5", None, None]),
        ("$a / $b", {"type": "int4"}, [2, None, None]),  # SQLite integer division; x/0 is NULL
        ("$f / 2", {"type": "real8"}, [0.625, -1.25, None]),
        ("$a * 2 + 1", {"type": "int8"}, [11, 15, None]),
        (
            "CASE WHEN $a > 5 THEN 'big' ELSE 'small' END",
            {"type": "string"},
            ["small", "big", "small"],
        ),
        ("upper(substr($s, 1, 2))", {"type": "string"}, ["AL", None, "A_"]),
        ("ifnull($s, 'none')", {"type": "string"}, ["alpha", "none", "a_b"]),
        ("length($s)", {"type": "int4"}, [5, None, 3]),
        ("replace($s, 'a', 'o')", {"type": "string"}, ["olpho", None, "o_b"]),
        ("round($f, 1)", {"type": "real8"}, [1.3, -2.5, None]),  # half away from zero
        ("strftime('%Y', $d)", {"type": "string"}, ["2024", "1999", None]),
        ("datetime($d)", {"type": "string"}, ["2024-02-29 00:00:00", "1999-12-31 00:00:00", None]),
        (
            "$id",
            {"type": "numeric", "precision": 5, "scale": 2},
            [Decimal("1.00"), Decimal("2.00"), Decimal("3.00")],
        ),
        ("'X'", {"type": "string", "length": 1}, ["X", "X", "X"]),
        ("iif($a IS NULL, 1, 0)", {"type": "boolean"}, [False, False, True]),
        (None, {"type": "int4"}, [None, None, None]),
    ],
)
def test_add_column_expression_values(
    expression: str | None, dms_type: dict[str, Any], expected: list[Any]
) -> None:
    p = plan(add(expression, dms_type))
    out = run(p)
    assert out.schema.names == ["id", "a", "b", "f", "s", "d", "x"]
    assert out.column("x").to_pylist() == expected
    assert out.column("x").type == arrow_type(p.outputs[-1].type)
    assert out.column("a").to_pylist() == [5, 7, None]


def test_add_column_result_has_the_target_arrow_type() -> None:
    p = plan(
        add("$a", {"type": "numeric", "precision": 10, "scale": 2}),
        add("$a", {"type": "int2"}, "y"),
    )
    out = run(p)
    assert out.schema.field("x").type == pa.decimal128(10, 2)
    assert out.schema.field("y").type == pa.int16()


def test_now_is_current_utc_time_formatted_like_sqlite() -> None:
    p = plan(add("datetime('now')", {"type": "string"}), add("date('now')", {"type": "date"}, "y"))
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    out = run(p)
    values = out.column("x").to_pylist()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(v)) for v in values)
    stamp = dt.datetime.strptime(str(values[0]), "%Y-%m-%d %H:%M:%S")
    assert abs((stamp - before).total_seconds()) < 60
    assert out.column("y").to_pylist()[0] in (before.date(), stamp.date())


def test_expression_may_read_a_removed_column() -> None:
    p = plan(rule(1, "remove-column", "s"), add("upper($s)", {"type": "string"}))
    assert p.read_columns == ("id", "a", "b", "f", "s", "d")
    out = run(p)
    assert out.schema.names == ["id", "a", "b", "f", "d", "x"]
    assert out.column("x").to_pylist() == ["ALPHA", None, "A_B"]


def test_renames_only_take_the_fast_path_without_copying() -> None:
    p = plan(
        rule(1, "rename", "a", value="A"),
        rule(2, "remove-column", "f"),
        rule(3, "add-prefix", "%", value="c_"),
    )
    source = batch().select(list(p.read_columns))
    out = evaluate_outputs(source, p)
    assert out.schema.names == ["c_id", "c_A", "c_b", "c_s", "c_d"]
    assert compiled(p).fast and compiled(p).sqlite.con is None
    assert _data_address(out.column("c_A")) == _data_address(source.column("a"))
    assert out.column("c_s").to_pylist() == ["alpha", None, "a_b"]


def test_compiled_once_per_plan_and_plan_still_pickles() -> None:
    p = plan(add("$a + 1", {"type": "int8"}))
    first = compiled(p)
    assert run(p).column("x").to_pylist() == [6, 8, None]
    assert run(p, batch(a=pa.array([1, 2, 3], pa.int32()))).column("x").to_pylist() == [2, 3, 4]
    assert compiled(p) is first
    copy = pickle.loads(pickle.dumps(p))
    assert copy == p
    assert run(copy).column("x").to_pylist() == [6, 8, None]


@pytest.mark.parametrize(
    ("column", "dms_type", "values", "expected"),
    [
        ("a", {"type": "int8"}, pa.array([1, -2, None], pa.int32()), [1, -2, None]),
        ("s", {"type": "int4"}, pa.array(["12", None, "-3"]), [12, None, -3]),
        (
            "f",
            {"type": "numeric", "precision": 6, "scale": 2},
            pa.array([1.25, -2.5, None]),
            [Decimal("1.25"), Decimal("-2.50"), None],
        ),
        (
            "a",
            {"type": "string", "length": 3},
            pa.array([5, 100, None], pa.int32()),
            ["5", "100", None],
        ),
        ("f", {"type": "real4"}, pa.array([0.5, 2.0, None]), [0.5, 2.0, None]),
    ],
)
def test_change_data_type_casts_exactly(
    column: str, dms_type: dict[str, Any], values: pa.Array[Any], expected: list[Any]
) -> None:
    p = plan(rule(1, "change-data-type", column, **{"data-type": dms_type}))
    out = run(p, batch(**{column: values}))
    assert out.column(column).to_pylist() == expected


@pytest.mark.parametrize(
    ("column", "dms_type", "values", "row"),
    [
        ("id", {"type": "int2"}, pa.array([1, 40000, 3], pa.int64()), "id=40000"),
        ("f", {"type": "int4"}, pa.array([1.0, 2.0, 2.5]), "id=3"),
        ("s", {"type": "int8"}, pa.array(["1", "x", None]), "id=2"),
        ("f", {"type": "numeric", "precision": 4, "scale": 1}, pa.array([1.25, 2.0, None]), "id=1"),
        ("s", {"type": "string", "length": 4}, pa.array(["abc", None, "abcde"]), "id=3"),
        ("f", {"type": "real4"}, pa.array([1.5, 1e300, None]), "id=2"),
        ("a", {"type": "uint8"}, pa.array([1, 2, 3], pa.int32()), None),
    ],
)
def test_lossy_change_data_type_raises_data_error(
    column: str, dms_type: dict[str, Any], values: pa.Array[Any], row: str | None
) -> None:
    p = plan(rule(1, "change-data-type", column, **{"data-type": dms_type}))
    source = batch(**{column: values})
    if row is None:  # lossless: int32 always fits decimal(20,0)
        assert run(p, source).column(column).to_pylist() == [Decimal(1), Decimal(2), Decimal(3)]
        return
    with pytest.raises(DataError) as info:
        run(p, source)
    assert info.value.row == row
    assert info.value.table == "s.t"
    assert f"column {column}" in str(info.value)


def test_timestamp_to_date_keeps_midnights_and_rejects_times() -> None:
    table = Table("s", "t", (Column("ts", ColumnType(Kind.TIMESTAMP)),))
    p = plan(rule(1, "change-data-type", "ts", **{"data-type": {"type": "date"}}), table=table)
    midnight = pa.array([dt.datetime(2024, 1, 2), None], pa.timestamp("us"))
    assert evaluate_outputs(pa.record_batch({"ts": midnight}), p).column(0).to_pylist() == [
        dt.date(2024, 1, 2),
        None,
    ]
    noon = pa.array([dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3, 12)], pa.timestamp("us"))
    with pytest.raises(DataError, match="would become") as info:
        evaluate_outputs(pa.record_batch({"ts": noon}), p)
    assert info.value.row == "index 1"


def test_mysql_time_to_time_of_day_keeps_the_day_and_rejects_the_rest() -> None:
    """A MySQL TIME is an interval; change-data-type time takes the ones within a day
    (before: Arrow has no such cast, and the table failed with an internal error)."""
    table = Table("s", "t", (Column("tm", ColumnType(Kind.INTERVAL, native="time")),))
    p = plan(rule(1, "change-data-type", "tm", **{"data-type": {"type": "time"}}), table=table)
    day = pa.array([(0, 0, 45_000_500_000_000), None], pa.month_day_nano_interval())
    out = evaluate_outputs(pa.record_batch({"tm": day}), p).column(0).to_pylist()
    assert out == [dt.time(12, 30, 0, 500000), None]
    beyond = pa.array([(0, 0, 0), (0, 0, -1000), (0, 0, 86_400_000_000_000)], day.type)
    with pytest.raises(DataError, match="not a time of day") as info:
        evaluate_outputs(pa.record_batch({"tm": beyond}), p)
    assert info.value.row == "index 1"


def test_data_error_names_row_index_when_key_is_not_read() -> None:
    table = Table("s", "t", (Column("v", ColumnType(Kind.INT64)),))
    p = plan(rule(1, "change-data-type", "v", **{"data-type": {"type": "int1"}}), table=table)
    with pytest.raises(DataError) as info:
        evaluate_outputs(pa.record_batch({"v": pa.array([1, 2, 3, 99999], pa.int64())}), p)
    assert info.value.row == "index 3"


def test_expression_result_too_long_for_target_is_truncated_and_reported() -> None:
    """DMS truncates a result longer than its string(n); the caller learns which rows."""
    p = plan(add("$s || '!'", {"type": "string", "length": 4}))
    cut: list[Truncation] = []
    out = evaluate_outputs(batch().select(list(p.read_columns)), p, truncations=cut)
    assert out.column("x").to_pylist() == ["alph", None, "a_b!"]
    assert cut == [Truncation("x", [0], 4)]


@pytest.mark.parametrize(
    ("expression", "target", "fragment"),
    [
        ("$a +", None, "invalid expression"),
        ("$nope", None, "$nope, which is not a column"),
        ("$AR_H_NOPE", None, "not a DMS header"),
        ("$AR_M_SOURCE_SCHEMA", None, None),
        ("$AR_H_OPERATION || $s", ColumnType(Kind.STRING), None),
        ("no_such_function($a)", None, "invalid expression"),
        ("count($a)", None, "aggregate"),
        ("$a FROM x", None, "invalid expression"),
        ("(SELECT 1)", None, "subqueries"),
        ("max($a)", None, "aggregate"),
        ("row_number() OVER ()", None, "invalid expression"),
        ("1; DROP TABLE x", None, "invalid expression"),
        ("$a -- comment", None, None),
        ("'abc'", ColumnType(Kind.INT32), "invalid expression"),
        ("CAST('x' AS DATE)", None, None),  # SQLite: NUMERIC affinity, 0
        ("$a || 'x'", ColumnType(Kind.STRING), None),
        ("julianday($d)", ColumnType(Kind.FLOAT64), None),
    ],
)
def test_validate_expression(
    expression: str, target: ColumnType | None, fragment: str | None
) -> None:
    if fragment is None:
        validate_expression(expression, SRC.columns, target=target)
        return
    with pytest.raises(ConfigError) as info:
        validate_expression(expression, SRC.columns, target=target, where="w", path="$.p")
    assert info.value.path == "$.p"
    assert fragment in str(info.value)


def test_sqlite_date_functions_match_sqlite_values() -> None:
    p = plan(
        add("julianday($d)", {"type": "real8"}),
        add("unixepoch($d)", {"type": "int8"}, "y"),
        add("time('2024-01-02 03:04:05')", {"type": "string"}, "z"),
    )
    out = run(p)
    assert out.column("x").to_pylist() == [2460369.5, 2451543.5, None]
    assert out.column("y").to_pylist() == [1709164800, 946598400, None]
    assert out.column("z").to_pylist() == ["03:04:05"] * 3


def test_real_results_into_a_decimal_column_are_rounded_to_its_scale() -> None:
    """SQLite's REAL arithmetic is inexact (19.99 * 3 = 59.970000000000006); a DECIMAL(p,s)
    column takes it rounded to s decimals, as a database does on insert."""
    p = plan(add("$f * 19.99", {"type": "numeric", "precision": 12, "scale": 2}))
    out = run(p, batch(f=pa.array([3.0, 0.125, None])))
    assert out.column("x").to_pylist() == [Decimal("59.97"), Decimal("2.50"), None]
    p = plan(add("$a * 1000000", {"type": "numeric", "precision": 4, "scale": 0}))
    with pytest.raises(DataError):
        run(p)
