"""Change records as rows: a batch of changed rows with DMS's ``Op`` column (I/U/D) and
the commit-time column in front, as the lake's CDC files carry them. Any target that
writes changes as records (a lake, a stream, a handler) decorates its rows with
:func:`with_op_and_time`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

OP_COLUMN = "Op"


def with_op_and_time(
    arrays: Sequence[pa.Array[Any]],
    names: Sequence[str],
    ops: Sequence[str] | None,
    stamps: tuple[str, Sequence[str]] | None,
) -> pa.RecordBatch:
    """The row columns ``arrays`` (named ``names``) with, in front, the ``Op`` column of
    ``ops`` (None: without it) and, after it, the timestamp column ``stamps`` = (name,
    values) (None: without it)."""
    out, labels = list(arrays), list(names)
    if stamps is not None:
        out.insert(0, pa.array(stamps[1], pa.string()))
        labels.insert(0, stamps[0])
    if ops is not None:
        out.insert(0, pa.array(ops, pa.string()))
        labels.insert(0, OP_COLUMN)
    return pa.RecordBatch.from_arrays(out, names=labels)
