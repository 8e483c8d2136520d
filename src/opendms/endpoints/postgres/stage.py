"""Stage + merge for long runs of same-shaped changes (one big UPDATE, a bulk load).

Thousands of row statements cost a parse, plan and execute each, even pipelined.
A run of at least :data:`STAGE_MIN` consecutive changes of one shape goes through
COPY instead, inside the batch's transaction:

- inserts: COPY straight into the target table;
- updates that keep the primary key: COPY the after-images (the last one per key)
  into a temporary table, then one ``UPDATE ... FROM`` joined on the key;
- deletes by primary key: COPY the keys, then one ``DELETE ... USING``.

Anything else (key changes, tables without a primary key, NULL keys) returns False
and runs as row statements.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from opendms.changes import UNCHANGED, Change, Op
from opendms.endpoints.postgres.types import quote_ident

STAGE_MIN = 2000
_names = itertools.count(1)


@dataclass
class ApplyPaths:
    """How an applier's batches ran, counted since it opened (``task status --json``
    shows them as ``apply_*`` metrics; the CDC loop logs each batch's share at INFO).

    ``staged``: runs (and their changes) applied by COPY + one merge statement;
    ``statements``: runs applied as one pipelined executemany; ``one_by_one``: changes
    applied one statement and savepoint at a time (a batch the target refused on a
    conflict, an idempotent replay after a restart, a batch with DDL or a suspended table);
    ``redone``: batches that fell back to one by one after the fast path failed;
    ``batches`` and ``seconds``: apply calls (refused ones too) and the time spent in them.
    """

    batches: int = 0
    staged_runs: int = 0
    staged_rows: int = 0
    statement_runs: int = 0
    statement_rows: int = 0
    one_by_one: int = 0
    redone: int = 0
    seconds: float = 0.0

    def add(self, other: ApplyPaths) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def metrics(self) -> dict[str, float]:
        return {f"apply_{k}": float(v) for k, v in asdict(self).items()}


class MissingRowsError(Exception):
    """An update or delete found fewer target rows than it was given (some are missing);
    raised only for the operations whose apply-error policy must see each one."""


def staged(cur: Any, tmap: Any, changes: list[Change], strict: frozenset[Op] = frozenset()) -> bool:
    """Apply ``changes`` (one table, one op, one column set) by COPY; False: not eligible.
    MissingRowsError when an operation in ``strict`` misses a row."""
    first = changes[0]
    if first.op is Op.INSERT:
        cols, rows = _row_images(tmap, changes)
        _copy(cur, tmap.qualified, cols, rows)
        return True
    pk = tmap.target.primary_key
    if not pk or not _keyed_by_pk(tmap, changes, pk):
        return False
    if first.op is Op.UPDATE:
        return _update(cur, tmap, changes, pk, Op.UPDATE in strict)
    if first.op is Op.DELETE:
        keys = {tuple(c.key): None for c in changes}
        stage = _stage(cur, tmap, list(pk), list(keys))
        join = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in pk)
        cur.execute(f"DELETE FROM {tmap.qualified} t USING {stage} s WHERE {join}")
        _check_count(cur, len(keys), Op.DELETE in strict)
        return True
    return False


def _check_count(cur: Any, expected: int, strict: bool) -> None:
    if strict and cur.rowcount < expected:
        raise MissingRowsError(f"{expected - cur.rowcount} row(s) missing")


def _keyed_by_pk(tmap: Any, changes: list[Change], pk: tuple[str, ...]) -> bool:
    first = changes[0]
    targets = tuple(tmap.names.get(c) for c in first.key_columns)
    if targets != pk:
        return False
    return all(None not in c.key and c.key_columns == first.key_columns for c in changes)


def _row_images(tmap: Any, changes: list[Change]) -> tuple[list[str], list[tuple[Any, ...]]]:
    first = changes[0]
    index = [i for i, c in enumerate(first.columns) if c in tmap.names]
    cols = [tmap.names[first.columns[i]] for i in index]
    if len(index) == len(first.columns):
        return cols, [c.values for c in changes]
    pick = _picker(index)
    return cols, [pick(c.values) for c in changes]


def _picker(index: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A fast ``lambda row: tuple(row[i] for i in index)``."""
    if len(index) == 1:
        only = index[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*index)


def _update(cur: Any, tmap: Any, changes: list[Change], pk: tuple[str, ...], strict: bool) -> bool:
    cols, rows = _row_images(tmap, changes)
    if any(v is UNCHANGED for row in rows for v in row) or not set(pk) <= set(cols):
        return False
    key_of = _picker([cols.index(k) for k in pk])
    keys = [key_of(row) for row in rows]
    if any(k != c.key for k, c in zip(keys, changes, strict=True)):
        return False  # the key changes: row statements keep the order right
    last = dict(zip(keys, rows, strict=True))  # the last image per key wins
    stage = _stage(cur, tmap, cols, list(last.values()))
    sets = ", ".join(f"{quote_ident(c)} = s.{quote_ident(c)}" for c in cols if c not in pk)
    if sets:
        join = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in pk)
        cur.execute(f"UPDATE {tmap.qualified} t SET {sets} FROM {stage} s WHERE {join}")
        _check_count(cur, len(last), strict)
    return True


def _stage(cur: Any, tmap: Any, cols: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A temporary table of the target's types for ``cols``, filled by COPY."""
    stage = f"opendms_stage_{next(_names)}"
    names = ", ".join(quote_ident(c) for c in cols)
    cur.execute(
        f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {names} FROM {tmap.qualified} "
        "WITH NO DATA"
    )
    _copy(cur, stage, cols, rows)
    cur.execute(f"ANALYZE {stage}")
    return stage


def _copy(cur: Any, table: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    names = ", ".join(quote_ident(c) for c in cols)
    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
