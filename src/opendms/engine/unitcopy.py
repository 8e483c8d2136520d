"""One unit of the full load, copied on its own: :func:`copy_unit`.

A unit (a table, or one parallel-load segment of it) travels as a :class:`UnitWork`,
plain picklable values: the unit and its ``TablePlan``, the endpoints' URLs and
settings, the source snapshot and the task settings the copy needs. ``copy_unit``
opens its own source and target through the engines, copies (raw COPY bytes between
same-engine endpoints, else Arrow batches, screened and converted, through one writer
or ``ParallelLoadThreads`` of them), closes them and returns a :class:`UnitResult`.

While it runs, a unit talks to whoever runs it through two small interfaces the
executor supplies: a :class:`UnitReport` (started, rows as they are written, data
errors) and a :class:`StopFlag`. In a thread they are the coordinator's own objects;
across processes, a queue and an event (see :mod:`opendms.engine.executor`).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from opendms.arrowutil import read_rejections
from opendms.config import DataErrorPolicyKind, EndpointSpec
from opendms.endpoints import open_source, open_target, same_engine
from opendms.endpoints.base import BatchWriter, Rejection, Source, Target
from opendms.endpoints.engine import (
    ObjectMappingTarget,
    RawCopySource,
    RawCopyTarget,
    SameEngineTarget,
    StopFlag,
    TaggingTarget,
    TaskStartTarget,
)
from opendms.engine.parallelwrite import ParallelWriter
from opendms.engine.rowscreen import DataErrorRow, RowScreen
from opendms.engine.units import LoadUnit
from opendms.errors import DataError, OpenDMSError, StopRequested
from opendms.mapping import TablePlan, evaluate_outputs
from opendms.mapping.expressions import Truncation
from opendms.mapping.objectmap import ObjectMappingRule
from opendms.model import ColumnType, Kind, ReadPlan
from opendms.tasksettings import ErrorBehaviorSection

log = logging.getLogger("opendms.fullload")


@dataclass(frozen=True)
class UnitOptions:
    """The task settings a unit needs: the error policies, ``CommitRate``, the writers
    per unit (``ParallelLoadThreads`` where the target takes several), ``fresh`` (a raw
    copy is the only writer into a table this load created) and the S3 object tags of
    its table, ``object_mapping`` its object-mapping rule (targets shaped by them),
    ``task_start`` the time the task's target was opened (for targets that stamp rows
    with it), ``task`` the task's name (for targets that name what they write after it)."""

    behavior: ErrorBehaviorSection
    commit_rate: int
    write_threads: int = 1
    fresh: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    object_mapping: ObjectMappingRule | None = None
    task_start: datetime | None = None
    task: str | None = None


@dataclass(frozen=True)
class UnitWork:
    """Everything :func:`copy_unit` needs, as picklable values."""

    unit: LoadUnit
    source: EndpointSpec
    target: EndpointSpec
    snapshot: str | None
    options: UnitOptions

    @property
    def name(self) -> str:
        return self.unit.name


class UnitReport(Protocol):
    """What a running unit tells its coordinator."""

    def started(self) -> None: ...

    def rows(self, count: int) -> None:
        """``count`` more rows written (raw copy: estimated until its end)."""

    def data_errors(self, rows: int, logged: list[DataErrorRow]) -> int:
        """``rows`` more rows with data errors (``logged``: those LOG_ERROR records);
        the table's rows with data errors so far, as far as the reporter knows."""


class Outcome(enum.StrEnum):
    DONE = "done"
    STOPPED = "stopped"  # a stop request
    FAILED = "failed"  # the table fails with ``reason``
    RELOAD = "reload"  # a recoverable error: the table is loaded again


@dataclass(frozen=True)
class UnitResult:
    """How a unit ended: rows written, rows with data errors, wall-clock seconds;
    ``data_error``: it failed on a data error; ``stop_task``: a policy stops the task."""

    outcome: Outcome
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    reason: str = ""
    data_error: bool = False
    stop_task: bool = False


class _Quiet:
    def started(self) -> None:
        pass

    def rows(self, count: int) -> None:
        pass

    def data_errors(self, rows: int, logged: list[DataErrorRow]) -> int:
        return 0


@dataclass
class _Tally:
    rows: int = 0
    errors: int = 0
    stop_task: bool = False
    began: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)  # ParallelLoadThreads count

    def result(self, outcome: Outcome, reason: str = "", data: bool = False) -> UnitResult:
        seconds = time.monotonic() - self.began
        return UnitResult(outcome, self.rows, self.errors, seconds, reason, data, self.stop_task)


def copy_unit(work: UnitWork, report: UnitReport | None, stop: StopFlag) -> UnitResult:
    """Copy one unit with connections of its own; every outcome is a value."""
    report = report or _Quiet()
    tally = _Tally()
    try:
        report.started()
        with ExitStack() as stack:
            source = open_source(work.source.url, work.source.settings)
            stack.callback(_close, source, work.name)
            target = open_target(work.target.url, work.target.settings, work.options.task)
            stack.callback(_close, target, work.name)
            UnitCopy(work, source, target, report, stop, tally).run()
    except StopRequested:
        return tally.result(Outcome.STOPPED)
    except OpenDMSError as exc:
        outcome = Outcome.RELOAD if exc.retryable else Outcome.FAILED
        return tally.result(outcome, str(exc), isinstance(exc, DataError))
    except Exception as exc:
        log.exception("table %s: internal error", work.name)
        return tally.result(Outcome.FAILED, f"internal error: {exc!r}")
    return tally.result(Outcome.DONE)


def _close(endpoint: Source | Target, name: str) -> None:
    """Close a unit's endpoint; one that fails to close (its server gone) fails nothing."""
    try:
        endpoint.close()
    except Exception as exc:
        log.warning("table %s: closing %s failed: %s", name, endpoint.url.scheme, exc)


class UnitCopy:
    """The copy of one unit over endpoints opened for it."""

    def __init__(
        self,
        work: UnitWork,
        source: Source,
        target: Target,
        report: UnitReport,
        stop: StopFlag,
        tally: _Tally,
    ) -> None:
        self.work, self.unit, self.plan = work, work.unit, work.unit.plan
        self.source, self.target = source, target
        self.report, self.stop, self.tally = report, stop, tally
        self.behavior = work.options.behavior
        if isinstance(target, SameEngineTarget):
            target.same_engine = same_engine(source.url.scheme, target.url.scheme)
        start = work.options.task_start
        if start is not None and isinstance(target, TaskStartTarget):
            target.started = start
        tags = work.options.tags
        if tags and isinstance(target, TaggingTarget):
            table = self.plan.target
            target.set_object_tags({(table.schema, table.name): tags}, quiet=True)
        if isinstance(target, ObjectMappingTarget):
            table = self.plan.target
            mapping = work.options.object_mapping
            target.set_object_mappings({(table.schema, table.name): mapping}, quiet=True)

    def run(self) -> None:
        raw = passthrough_ok(self.source, self.target, self.plan)
        writers = self.work.options.write_threads
        how = "raw COPY pass-through" if raw else "Arrow batches"
        if not raw and writers > 1:
            how = f"{how}, {writers} writers"
        log.info("table %s: %s", self.unit.name, how)
        if raw:
            self._copy_raw()
        else:
            self._copy_batches()

    # -- book-keeping ----------------------------------------------------------

    def count(self, rows: int) -> None:
        with self.tally.lock:
            self.tally.rows += rows
        self.report.rows(rows)

    def data_errors(self, rows: int, logged: list[DataErrorRow]) -> int:
        """Rows with data errors: reported; the table's count so far."""
        with self.tally.lock:
            self.tally.errors += rows
        return max(self.report.data_errors(rows, logged), self.tally.errors)

    def stop_task(self) -> None:
        """A data-error policy stops the task (the coordinator does, from the result)."""
        self.tally.stop_task = True

    # -- Arrow batches ---------------------------------------------------------

    def _copy_batches(self) -> None:
        writer = self._writer()
        counted = isinstance(writer, ParallelWriter)  # its writers count what they wrote
        try:
            for batch in self._batches():
                if self.stop.is_set():
                    raise StopRequested
                kept = RowScreen(self).screen(batch)
                if kept.num_rows:
                    writer.write(kept)
                if not counted:
                    self.count(kept.num_rows)
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def _writer(self) -> BatchWriter:
        """The unit's writer: one target writer, or ParallelLoadThreads of them behind a
        :class:`ParallelWriter` (each counts the rows it wrote)."""
        unit, table = self.unit, self.plan.target
        seg: int | str | None = None
        if unit.segment and unit.segment.name:
            seg = unit.segment.name
        elif unit.segment and unit.parts > 1:
            seg = unit.segment.index
        threads = self.work.options.write_threads
        if threads == 1:
            return self.target.writer(table, seg)
        return ParallelWriter.open(
            lambda: self.target.writer(table, seg),
            threads,
            depth=1,  # writers busy, one batch waiting, one being read: memory stays bounded
            on_written=self.count,
            name=f"write-{self.plan.source.name}",
        )

    def _batches(self) -> Iterator[pa.RecordBatch]:
        plan = self.plan
        rate = self.work.options.commit_rate
        read = ReadPlan(plan.source, plan.read_columns, plan.filters, self.unit.segment, rate)
        for batch in self.source.read(read, self.work.snapshot):
            found = [Rejection(*r) for r in read_rejections(batch)]
            if found:
                batch = RowScreen(self).reject(batch, found)
            yield from self._convert(batch)

    def _convert(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        cut: list[Truncation] = []
        try:
            out = evaluate_outputs(batch, self.plan, truncations=cut)
        except DataError:
            if self.behavior.DataErrorPolicy not in (
                DataErrorPolicyKind.IGNORE_RECORD,
                DataErrorPolicyKind.LOG_ERROR,
            ):
                raise
        else:
            yield self._truncated(out, cut)
            return
        yield from self._convert_rows(batch)

    def _convert_rows(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """Slow path: isolate the rows whose values cannot be converted."""
        for i in range(batch.num_rows):
            row = batch.slice(i, 1)
            cut: list[Truncation] = []
            try:
                out = evaluate_outputs(row, self.plan, truncations=cut)
            except DataError as exc:
                RowScreen(self).log_rejects(row, [Rejection(0, exc.column, exc.message)])
                continue
            yield self._truncated(out, cut)

    def _truncated(self, out: pa.RecordBatch, cut: list[Truncation]) -> pa.RecordBatch:
        """Expression results cut to their string(n), LOBs cut to their limit:
        DataTruncationErrorPolicy."""
        return RowScreen(self).truncated(out, cut) if cut else out

    # -- raw COPY --------------------------------------------------------------

    def _copy_raw(self) -> None:
        """Same-engine fast path: the source's binary COPY goes straight to the target."""
        plan, source, target = self.plan, self.source, self.target
        assert isinstance(source, RawCopySource) and isinstance(target, RawCopyTarget)
        read = ReadPlan(plan.source, plan.read_columns, plan.filters, self.unit.segment)
        spec = source.copy_spec(read, self.work.snapshot)
        before = self.tally.rows
        total = target.copy_from(plan.target, spec, self.count, self.stop, self.work.options.fresh)
        self.count(total - (self.tally.rows - before))  # estimates made exact


def passthrough_ok(source: Source, target: Target, plan: TablePlan) -> bool:
    """True when rows can move as raw COPY bytes (same engine, no transformation)."""
    if not (isinstance(source, RawCopySource) and isinstance(target, RawCopyTarget)):
        return False
    if not target.same_engine:
        return False
    if plan.read_columns != tuple(o.source for o in plan.outputs):
        return False
    for out in plan.outputs:
        if out.expression is not None or out.source is None or out.lob_limit is not None:
            return False
        col = plan.source.column(out.source)
        if out.type != col.type or not _raw_safe(col.type):
            return False
    return True


def _raw_safe(ctype: ColumnType) -> bool:
    """Binary COPY of arrays embeds the element type OID, which differs between servers
    for user-defined types."""
    if ctype.kind is Kind.ARRAY and ctype.element is not None:
        return ctype.element.kind is not Kind.ENUM and ctype.element.type_name is None
    return True
