"""Turning a driver's Arrow batch into the canonical Arrow form, row errors kept apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from opendms.arrowutil import convert_rows, with_rejections
from opendms.errors import DataError
from opendms.model import ColumnType, ReadPlan

ColumnFn = Callable[["pa.Array[Any]", ColumnType], "pa.Array[Any]"]


def _bind(column: ColumnFn, ctype: ColumnType) -> Callable[[pa.Array[Any]], pa.Array[Any]]:
    def convert(array: pa.Array[Any]) -> pa.Array[Any]:
        return column(array, ctype)

    return convert


def canonical_batch(
    plan: ReadPlan, types: list[ColumnType], batch: pa.RecordBatch, column: ColumnFn
) -> pa.RecordBatch:
    """Convert every column with ``column``; values that cannot be converted become
    rejections attached to the batch (their rows are then handled by the task's
    DataErrorPolicy) instead of failing the whole batch."""
    arrays, rejected = [], []
    for i, ctype in enumerate(types):
        name = plan.columns[i]
        try:
            array, bad = convert_rows(batch.column(i), _bind(column, ctype))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError) as exc:
            source = batch.schema.field(i).type
            message = f"column {name}: cannot carry {source} as {ctype}: {exc}"
            raise DataError(plan.table.qualified, message) from exc
        arrays.append(array)
        reason = f"value cannot be represented as {ctype}"
        rejected += [(row, name, reason) for row in bad]
    out = pa.RecordBatch.from_arrays(arrays, names=list(plan.columns))
    return with_rejections(out, rejected)
