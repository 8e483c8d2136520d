"""Checksum bisection: find the key ranges whose rows differ without reading the rows.

Both sides compute ``(count, sum of row hashes)`` per key segment in the database
(:mod:`opendms.validate.checksum`); segments that agree are done. A differing
segment of more than ``ROW_LEVEL`` rows is split again; smaller ones are returned
to be compared row by row. Used for one-integer-column keys on PostgreSQL and
MySQL/MariaDB sides whose columns all have an engine-neutral SQL text form.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa

from opendms.model import ColumnType, Filter, FilterGroup
from opendms.validate.checksum import INTEGERS, Checksums, column_exprs, dialect_of
from opendms.validate.sides import Side

SEGMENT_ROWS = 1000  # rows per checksum segment
MAX_SEGMENTS = 4096  # segments per checksum query
ROW_LEVEL = 5000  # differing segments up to this size are compared row by row
RANGES_PER_READ = 200  # key ranges per row-level read

T = TypeVar("T")
Range = tuple[int, int]


@dataclass(frozen=True)
class Bisection:
    """What the checksums found: row counts and the key ranges that differ."""

    source_rows: int
    target_rows: int
    ranges: list[Range]
    rows: int = 0  # rows (of the larger side) in the differing ranges


def checksummers(
    source: Side,
    target: Side,
    key: tuple[int, ...],
    hints: list[ColumnType],
    common: list[pa.DataType | None],
) -> tuple[Checksums, Checksums] | None:
    """Checksum queries for both sides, or None when the table cannot use them."""
    if len(key) != 1 or source.filtered or source.url is None or target.url is None:
        return None
    i = key[0]
    if hints[i].kind not in INTEGERS or target.types()[i].kind not in INTEGERS:
        return None
    out = []
    for side in (source, target):
        assert side.url is not None
        dialect = dialect_of(side.url)
        if dialect is None:
            return None
        exprs = column_exprs(dialect, side.columns, side.types(), hints, common)
        if exprs is None:
            return None
        out.append(Checksums(side.url, dialect, side.table, exprs, side.columns[i]))
    return out[0], out[1]


def _both(
    pool: ThreadPoolExecutor, left: Callable[..., T], right: Callable[..., T], *args: int
) -> tuple[T, T]:
    """``left(*args)`` and ``right(*args)``, run at the same time."""
    a, b = pool.submit(left, *args), pool.submit(right, *args)
    return a.result(), b.result()


def bisect(src: Checksums, dst: Checksums) -> Bisection:
    """The key ranges whose checksums differ between the two sides."""
    with ThreadPoolExecutor(2, "checksum") as pool:
        _both(pool, src.open, dst.open)
        try:
            (slo, shi, sn), (tlo, thi, tn) = _both(pool, src.bounds, dst.bounds)
            lows = [v for v in (slo, tlo) if v is not None]
            highs = [v for v in (shi, thi) if v is not None]
            if not lows:
                return Bisection(sn, tn, [])
            found = _differing(pool, src, dst, (min(lows), max(highs), max(sn, tn)))
            ranges = _merged([(a, b) for a, b, _ in found])
            return Bisection(sn, tn, ranges, sum(n for _, _, n in found))
        finally:
            src.close()
            dst.close()


def _differing(
    pool: ThreadPoolExecutor, src: Checksums, dst: Checksums, start: tuple[int, int, int]
) -> list[tuple[int, int, int]]:
    """(first key, last key, rows) of every small enough segment that differs."""
    todo, out = [start], []
    while todo:
        lo, hi, rows = todo.pop()
        count = max(1, min(rows // SEGMENT_ROWS, MAX_SEGMENTS))
        width = max(1, -(-(hi - lo + 1) // count))
        left, right = _both(pool, src.segments, dst.segments, lo, hi, width)
        for seg in sorted(set(left) | set(right)):
            if left.get(seg) == right.get(seg):
                continue
            a = lo + seg * width
            b = min(a + width - 1, hi)
            n = max(left.get(seg, (0, 0))[0], right.get(seg, (0, 0))[0])
            if n <= ROW_LEVEL or width == 1:
                out.append((a, b, n))
            else:
                todo.append((a, b, n))
    return out


def _merged(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def range_filters(column: str, ranges: list[Range]) -> list[tuple[FilterGroup, ...]]:
    """Filter sets reading the rows of ``ranges`` (``RANGES_PER_READ`` ranges per read)."""
    out: list[tuple[FilterGroup, ...]] = []
    for start in range(0, len(ranges), RANGES_PER_READ):
        conds = tuple(
            Filter(column, "between", (str(a), str(b)))
            for a, b in ranges[start : start + RANGES_PER_READ]
        )
        out.append((FilterGroup(column, conds),))
    return out
