"""Transformation-expression benchmark (not a test): add-column expressions per second.

    .venv/bin/python bench/expressions.py [--rows 200000] [--rounds 3]
    .venv/bin/python bench/expressions.py --smoke     # tiny sizes, seconds (the test suite)

Builds one Arrow batch of ``--rows`` rows (two text columns, two integer columns, a
decimal) and times ``evaluate_outputs`` for a few add-column expressions of the kinds the
DMS guide and labs use, in the same run:

- as shipped: expressions in the vectorised subset over Arrow arrays, the others by
  SQLite;
- the anchor: every expression evaluated by SQLite itself (what DMS does; the oracle
  the vectorised path is tested against), with vectorising turned off.

It checks that both give the same batch, and prints rows per second and the speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa

from common import BenchError, smoke_option, smoke_sizes
from opendms.mapping import TablePlan, evaluate_outputs, expressions, parse_table_mappings
from opendms.model import Column, ColumnType, Kind, Table

SOURCE = Table(
    "public",
    "customers",
    (
        Column("id", ColumnType(Kind.INT64)),
        Column("first_name", ColumnType(Kind.STRING, length=40)),
        Column("last_name", ColumnType(Kind.STRING, length=40)),
        Column("qty", ColumnType(Kind.INT32)),
        Column("price", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
    ),
    primary_key=("id",),
)

# name -> (expressions, their target types)
JOBS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "concat + multiply": [
        ("$first_name || ' ' || $last_name", {"type": "string", "length": 81}),
        ("$qty * 2", {"type": "int8"}),
    ],
    "upper(trim()) + sum": [
        ("upper(trim($last_name))", {"type": "string", "length": 40}),
        ("$id + $qty - 1", {"type": "int8"}),
    ],
    "decimal arithmetic (SQLite only)": [
        ("$price * $qty", {"type": "numeric", "precision": 14, "scale": 2}),
    ],
}


def batch(rows: int) -> pa.RecordBatch:
    names = ["Ana", "José", "  Li ", "O'Neil", None]
    return pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "first_name": pa.array([names[i % 5] for i in range(rows)], pa.string()),
            "last_name": pa.array([names[(i * 7) % 5] for i in range(rows)], pa.string()),
            "qty": pa.array([i % 100 for i in range(rows)], pa.int32()),
            "price": pa.array(
                [Decimal(i % 10_000).scaleb(-2) for i in range(rows)], pa.decimal128(10, 2)
            ),
        }
    )


def plan(exprs: list[tuple[str, dict[str, Any]]]) -> TablePlan:
    rules = [
        {
            "rule-type": "transformation",
            "rule-id": i + 1,
            "rule-name": f"add{i}",
            "rule-action": "add-column",
            "rule-target": "column",
            "object-locator": {"schema-name": "public", "table-name": "customers"},
            "value": f"x{i}",
            "expression": text,
            "data-type": dms_type,
        }
        for i, (text, dms_type) in enumerate(exprs)
    ]
    return parse_table_mappings({"rules": rules}).plan(SOURCE)


def timed(
    data: pa.RecordBatch, exprs: list[tuple[str, dict[str, Any]]], vectorise: bool, rounds: int
) -> tuple[float, pa.RecordBatch]:
    """Best seconds of ``rounds`` evaluations (a fresh plan each), and the result."""
    expressions.VECTORISE = vectorise
    try:
        best, out = float("inf"), None
        for _ in range(rounds):
            p = plan(exprs)
            start = time.perf_counter()
            out = evaluate_outputs(data, p)
            best = min(best, time.perf_counter() - start)
        assert out is not None
        return best, out
    finally:
        expressions.VECTORISE = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=2_000, rounds=1)
    data = batch(args.rows)
    print(f"rows: {args.rows:,}  (best of {args.rounds})")
    print(f"{'expressions':<34} {'opendms rows/s':>15} {'SQLite rows/s':>15} {'speed-up':>9}")
    for name, exprs in JOBS.items():
        ours, got = timed(data, exprs, True, args.rounds)
        anchor, expected = timed(data, exprs, False, args.rounds)
        if not got.equals(expected):
            raise BenchError(f"{name}: the vectorised result differs from SQLite's")
        print(
            f"{name:<34} {args.rows / ours:>15,.0f} {args.rows / anchor:>15,.0f} "
            f"{anchor / ours:>8.1f}x"
        )


if __name__ == "__main__":
    main()
