"""Units of full-load work: plain, serialisable descriptions of one slice to copy."""

from __future__ import annotations

from dataclasses import dataclass

from opendms.mapping import ParallelLoad, TablePlan
from opendms.model import Segment, Table


@dataclass(frozen=True)
class LoadUnit:
    """Copy ``segment`` (or all) of one planned table, one of ``parts`` units of it."""

    plan: TablePlan
    segment: Segment | None
    parts: int = 1

    @property
    def name(self) -> str:
        return self.plan.source.qualified


def segments_for(table: Table, parallel: ParallelLoad | None) -> list[Segment | None]:
    """DMS parallel-load settings as segments (``[None]`` = read the whole table)."""
    if parallel is None or parallel.kind == "none":
        return [None]
    if parallel.kind == "ranges":
        return _range_segments(parallel)
    names = parallel.partitions if parallel.kind == "partitions-list" else table.partitions
    if not names:
        return [None]
    return [Segment(i + 1, partition=name) for i, name in enumerate(names)]


def _range_segments(parallel: ParallelLoad) -> list[Segment | None]:
    bounds: list[tuple[str, ...] | None] = [None, *parallel.boundaries, None]
    names = parallel.segment_names or (None,) * (len(bounds) - 1)
    return [
        Segment(i + 1, parallel.columns, lower=bounds[i], upper=bounds[i + 1], name=names[i])
        for i in range(len(bounds) - 1)
    ]
