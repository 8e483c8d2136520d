"""The vectorised expression evaluator gives exactly what SQLite gives.

Random expressions (seeded, so a failure repeats) over the vectorised subset and just
outside it are evaluated twice by ``evaluate_outputs``: once as shipped (Arrow where the
expression allows it) and once with vectorising turned off (every expression through
SQLite itself, the oracle of ``test_expressions_sqlite_oracle``). Values, the error
raised (a DataError for a value the target type cannot take) and the truncations
reported must be equal. Values include NULLs, NUL characters, non-ASCII letters (which
SQLite's ``upper`` leaves alone), padding and integers at the edge of 64 bits, so
overflow must fall back to SQLite's REAL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.errors import ConfigError, DataError
from opendms.mapping import TablePlan, evaluate_outputs, expressions, parse_table_mappings
from opendms.mapping._arrowexpr import NotVectorisableError, compile_vector
from opendms.mapping.expressions import Truncation, compiled
from opendms.model import Column, ColumnType, Kind, Table

SRC = Table(
    "s",
    "t",
    (
        Column("id", ColumnType(Kind.INT64)),
        Column("t1", ColumnType(Kind.STRING)),
        Column("t2", ColumnType(Kind.STRING, length=10)),
        Column("i1", ColumnType(Kind.INT64)),
        Column("i2", ColumnType(Kind.INT32)),
        Column("n", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        Column("f", ColumnType(Kind.FLOAT64)),
    ),
    primary_key=("id",),
)

TEXTS = [
    "",
    " a ",
    "\ta\n ",
    " \u00a0x ",
    "Straße",
    "É",
    "abc",
    "a\x00b",
    "  ",
    "x'y",
    "ÀbC dÉf",
    "12",
    "-3",
    None,
]
INTS = [0, 1, -1, 7, 2**62, -(2**62), 2**63 - 1, -(2**63), 123456789, None]
SMALL = [0, 3, -5, 2**31 - 1, None]
DECIMALS = [Decimal("1.50"), Decimal("-2.25"), None]
TARGETS: list[dict[str, Any]] = [
    {"type": "string", "length": 50},
    {"type": "string", "length": 3},
    {"type": "int8"},
    {"type": "int4"},
    {"type": "numeric", "precision": 30, "scale": 2},
    {"type": "real8"},
    {"type": "string"},
]


def source_batch(rng: random.Random, rows: int) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "t1": pa.array([rng.choice(TEXTS) for _ in range(rows)], pa.string()),
            "t2": pa.array([rng.choice(TEXTS) for _ in range(rows)], pa.string()),
            "i1": pa.array([rng.choice(INTS) for _ in range(rows)], pa.int64()),
            "i2": pa.array(
                [rng.choice([0, 3, -5, 2**31 - 1, None]) for _ in range(rows)], pa.int32()
            ),
            "n": pa.array([rng.choice(["1.50", "-2.25", None]) for _ in range(rows)], pa.string()),
            "f": pa.array([rng.choice([1.5, -0.25, None]) for _ in range(rows)], pa.float64()),
        }
    )


def expression(rng: random.Random, depth: int = 0) -> str:
    """A random expression, mostly in the vectorised subset, sometimes outside it."""
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(
            ["$t1", "$t2", "$i1", "$i2", "'ab'", "'it''s'", "' '", "0", "3", "42", "$n", "$f"]
        )
    form = rng.randrange(7)
    a, b = expression(rng, depth + 1), expression(rng, depth + 1)
    if form == 0:
        return f"{a} || {b}"
    if form == 1:
        return f"{a} {rng.choice('+-*')} {b}"
    if form == 2:
        return f"{rng.choice(['upper', 'lower', 'trim', 'ltrim', 'rtrim', 'UPPER'])}({a})"
    if form == 3:
        return f"({a})"
    if form == 4:
        return f"-{a}"
    if form == 5:
        return f"{a}||{b}"
    return f"{a} {rng.choice(['/', '%'])} {b}"


def plan_for(exprs: list[tuple[str, dict[str, Any]]]) -> TablePlan:
    rules = [
        {
            "rule-type": "transformation",
            "rule-id": i + 1,
            "rule-name": f"r{i}",
            "rule-action": "add-column",
            "rule-target": "column",
            "object-locator": {"schema-name": "s", "table-name": "t"},
            "value": f"x{i}",
            "expression": text,
            "data-type": dms_type,
        }
        for i, (text, dms_type) in enumerate(exprs)
    ]
    return parse_table_mappings({"rules": rules}).plan(SRC)


def outcome(
    exprs: list[tuple[str, dict[str, Any]]], batch: pa.RecordBatch, vectorise: bool
) -> tuple[Any, ...]:
    expressions.VECTORISE = vectorise
    try:
        try:
            p = plan_for(exprs)
        except ConfigError as exc:  # a constant the target type cannot take
            return ("config", str(exc), 0)
        cut: list[Truncation] = []
        try:
            out = evaluate_outputs(batch, p, truncations=cut)
        except DataError as exc:
            return ("error", exc.message, exc.row, len(compiled(p).vector))
        values = [out.column(f"x{i}").to_pylist() for i in range(len(exprs))]
        truncated = sorted((t.column, t.rows, t.length) for t in cut)
        return ("ok", values, truncated, len(compiled(p).vector))
    finally:
        expressions.VECTORISE = True


def cases(seed: int, count: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield [(expression(rng), rng.choice(TARGETS)) for _ in range(rng.randint(1, 3))]


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_results_equal_sqlite(seed: int) -> None:
    rng = random.Random(1000 + seed)
    batch = source_batch(rng, 64)
    vectorised = 0
    for exprs in cases(seed, 60):
        fast, oracle = outcome(exprs, batch, True), outcome(exprs, batch, False)
        assert oracle[-1] == 0
        assert fast[:-1] == oracle[:-1], exprs
        vectorised += fast[-1]
    assert vectorised > 20  # the generator does reach the vectorised path


@pytest.mark.parametrize(
    ("text", "vector"),
    [
        ("$t1 || ' ' || $t2", True),
        ("$i1 * 2 + $i2", True),
        ("upper(trim($t1))", True),
        ("$i1 -- 1", False),  # a comment in SQLite
        ("$i1 /* x */ + 1", False),
        ("$n || 'x'", False),  # a decimal has NUMERIC affinity in SQLite
        ("$f * 2", False),
        ("$i1 / 2", False),
        ("$t1 + 1", False),  # SQLite converts text to a number
        ("length($t1)", False),
        ("1.5 * $i1", False),
        ("$AR_H_OPERATION || $t1", False),
        ("99999999999999999999 + $i1", False),
        ('"t1" || $t1', False),
    ],
)
def test_subset_boundaries(text: str, vector: bool) -> None:
    types: dict[str, pa.DataType] = {
        "i1": pa.int64(),
        "i2": pa.int32(),
        "t1": pa.string(),
        "t2": pa.string(),
    }
    if vector:
        compile_vector(text, types)
    else:
        with pytest.raises(NotVectorisableError):
            compile_vector(text, types)


def test_overflow_falls_back_to_sqlite_real() -> None:
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "t1": pa.array(["a", "b"]),
            "t2": pa.array(["c", None]),
            "i1": pa.array([2**63 - 1, 5], pa.int64()),
            "i2": pa.array([1, 2], pa.int32()),
            "n": pa.array([Decimal("1.00"), None], pa.decimal128(10, 2)),
            "f": pa.array([1.0, None]),
        }
    )
    exprs = [("$i1 + $i2", {"type": "string"}), ("$t1 || $t2", {"type": "string"})]
    result = outcome(exprs, batch, True)
    assert result[1] == [["9.22337203685478e+18", "7"], ["ac", None]]
    assert result[-1] == 2
