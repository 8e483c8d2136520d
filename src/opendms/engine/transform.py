"""Table-mapping rules applied to changes: source filters, add-column expressions and
changed data types, so a CDC target holds what a new full load would give.

Tables without such rules pass through untouched (the fast path). For the others
each change is rewritten into the target's columns (values in canonical Python
form), and an ApplyPlan whose source columns *are* the target outputs:

- insert: kept when the new row passes the filters, with outputs evaluated;
- update: new row passes -> delete the old key, insert the new row (the old row
  may not have passed, so it may not be in the target); fails -> delete the old key;
- delete: applied (deleting a row the filter had left out is a no-op).

An update that left values out (unchanged TOAST) is applied as an update of the
columns it has when the filter columns are known, since its full row is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from opendms.cdc import UNCHANGED, ApplyPlan, Change, Op, Transaction
from opendms.errors import DataError
from opendms.mapping import TablePlan
from opendms.mapping.expressions import compiled, evaluate_outputs
from opendms.model import Column, ColumnType, FilterGroup, Kind, Table, arrow_type

log = logging.getLogger("opendms.transform")
TableKey = tuple[str, str]


def needs_transform(plan: TablePlan) -> bool:
    outputs = plan.outputs
    renamed_only = all(o.expression is None and o.source is not None for o in outputs)
    return bool(plan.filters) or not renamed_only or not compiled(plan).fast


def output_plan(plan: TablePlan) -> ApplyPlan:
    """The ApplyPlan of a transformed table: its changes carry target columns."""
    columns = tuple(Column(o.name, o.type) for o in plan.outputs)
    key = tuple(_target_name(plan, k) or k for k in plan.source.primary_key)
    source = Table(plan.source.schema, plan.source.name, columns, key)
    return ApplyPlan(source, plan.target, {o.name: o.name for o in plan.outputs})


def _target_name(plan: TablePlan, column: str) -> str | None:
    for out in plan.outputs:
        if out.source == column:
            return out.name
    return None


class Transformer:
    """Rewrites the changes of transformed tables (values in canonical Python form)."""

    def __init__(self, plans: dict[TableKey, TablePlan]) -> None:
        self.plans = plans

    def __call__(self, txn: Transaction) -> Transaction:
        return replace(txn, changes=[c for change in txn.changes for c in self.one(change)])

    def one(self, change: Change) -> list[Change]:
        """The target changes of one source change (none when the filters drop it)."""
        plan = self.plans.get((change.schema, change.table))
        return [change] if plan is None else self._change(plan, change)

    def _change(self, plan: TablePlan, change: Change) -> list[Change]:
        if change.op in (Op.TRUNCATE, Op.DDL):
            return [change]
        key_cols = tuple(_target_name(plan, c) or c for c in change.key_columns)
        old = replace(change, op=Op.DELETE, columns=(), values=(), key_columns=key_cols)
        if change.op is Op.DELETE:
            return [old]
        row = dict(zip(change.columns, change.values, strict=True))
        known = all(row.get(g.column) is not UNCHANGED for g in plan.filters)
        if known and not passes(plan.filters, row, plan.source):
            return [replace(old, stat="U")] if change.op is Op.UPDATE else []
        new = self._outputs(plan, change, row)
        if change.op is Op.INSERT:
            return [new]
        if any(v is UNCHANGED for v in change.values):
            return [replace(new, op=Op.UPDATE, key_columns=key_cols, key=change.key)]
        return [replace(old, stat=""), replace(new, stat="U")]

    def _outputs(self, plan: TablePlan, change: Change, row: dict[str, Any]) -> Change:
        arrays = []
        for name in plan.read_columns:
            value = row.get(name)
            ctype = plan.source.column(name).type
            arrays.append(pa.array([None if value is UNCHANGED else value], arrow_type(ctype)))
        batch = pa.RecordBatch.from_arrays(arrays, names=list(plan.read_columns))
        result = evaluate_outputs(batch, plan).to_pylist()[0]
        values = []
        for out in plan.outputs:
            unchanged = out.source is not None and row.get(out.source) is UNCHANGED
            values.append(UNCHANGED if unchanged else result[out.name])
        columns = tuple(o.name for o in plan.outputs)
        return Change(Op.INSERT, change.schema, change.table, columns, tuple(values))


# -- source filters on Python values ------------------------------------------------


def passes(groups: tuple[FilterGroup, ...], row: dict[str, Any], table: Table) -> bool:
    """DMS filter semantics: conditions on one column are ORed, columns are ANDed."""
    for group in groups:
        value = row.get(group.column)
        parse = _parser(table.column(group.column).type)
        if not any(_holds(f.op, value, [parse(v) for v in f.values]) for f in group.conditions):
            return False
    return True


def _holds(op: str, value: Any, operands: list[Any]) -> bool:
    if op == "null":
        return value is None
    if op == "notnull":
        return value is not None
    if value is None:
        return False  # SQL: a comparison with NULL is not true
    if op == "eq":
        return bool(value == operands[0])
    if op == "noteq":
        return bool(value != operands[0])
    if op == "gte":
        return bool(value >= operands[0])
    if op == "lte":
        return bool(value <= operands[0])
    if op == "between":
        return bool(operands[0] <= value <= operands[1])
    raise DataError("filter", f"unknown filter operator {op!r}")


def _parser(ctype: ColumnType) -> Callable[[str], Any]:
    kind = ctype.kind
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64):
        return int
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        return float
    if kind is Kind.DECIMAL and arrow_type(ctype) != pa.string():
        return _decimal
    if kind is Kind.DATE:
        return date.fromisoformat
    if kind is Kind.TIMESTAMP:
        return datetime.fromisoformat
    if kind is Kind.TIMESTAMPTZ:
        return _aware
    if kind is Kind.BOOL:
        return lambda text: text.strip().lower() in ("1", "t", "true", "y", "yes")
    return str


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise DataError("filter", f"filter value {text!r} is not a number") from None
