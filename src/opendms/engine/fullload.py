"""The full-load coordinator: plan tables, prepare targets, run units, keep the books.

Units (:func:`~opendms.engine.unitcopy.copy_unit`) run through an
:class:`~opendms.engine.executor.Executor`, ``MaxFullLoadSubTasks`` at once, each with
connections of its own; they report rows and data errors as they go and end with a
:class:`~opendms.engine.unitcopy.UnitResult`. The coordinator keeps the shared state:
each table's :class:`TableRun`, the state store, the target's preparation and finish
once all of a table's units are done. All readers share one source snapshot. A table
whose unit fails is marked ``Table error`` and the task ends ``failed`` with the reason;
other tables go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from opendms.config import DataErrorPolicyKind, TaskSpec
from opendms.endpoints import engine_for, same_engine
from opendms.endpoints.base import PrepMode, Source, Target
from opendms.endpoints.engine import (
    DdlTarget,
    ObjectMappingTarget,
    RawCopyTarget,
    SameEngineTarget,
    TaggingTarget,
    TaskStartTarget,
)
from opendms.engine.executor import Executor, ExecutorFactory, ThreadExecutor
from opendms.engine.plan import Planner
from opendms.engine.progress import NoProgress, Progress
from opendms.engine.recover import Retries
from opendms.engine.reload import Reloads
from opendms.engine.rowscreen import DataErrorRow, escalation
from opendms.engine.unitcopy import Outcome, UnitOptions, UnitResult, UnitWork, passthrough_ok
from opendms.engine.units import LoadUnit, segments_for
from opendms.errors import ConfigError, OpenDMSError
from opendms.mapping import TableMappings, TablePlan
from opendms.model import Table, TableRef
from opendms.state import StateStore, TableState

__all__ = ["FullLoad", "LoadResult", "TableRun", "map_objects", "tag_objects"]

log = logging.getLogger("opendms.fullload")
PROGRESS_EVERY = 1.0  # seconds between table-statistics writes while a table loads
STOPPED = "task stopped before this table finished"


@dataclass
class TableRun:
    """Book-keeping for one table while its units run."""

    plan: TablePlan
    pending: int
    rows: int = 0
    errors: int = 0
    failure: str = ""
    started: bool = False
    completed: bool = False
    saved_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reload: str | None = None  # a recoverable error: load the table again
    retries: Retries | None = None


@dataclass(frozen=True)
class LoadResult:
    tables: int
    rows: int
    failed: dict[str, str]


class TableReport:
    """A unit's :class:`~opendms.engine.unitcopy.UnitReport`: into its table's run."""

    def __init__(self, load: FullLoad, run: TableRun) -> None:
        self.load, self.run = load, run

    def started(self) -> None:
        self.load._mark_started(self.run)

    def rows(self, count: int) -> None:
        self.load._count(self.run, count)

    def data_errors(self, rows: int, logged: list[DataErrorRow]) -> int:
        return self.load._data_errors(self.run, rows, logged)


class FullLoad:
    """Runs the full-load phase of one task."""

    def __init__(
        self,
        spec: TaskSpec,
        source: Source,
        target: Target,
        mappings: TableMappings,
        store: StateStore,
        progress: Progress | None = None,
        executor: ExecutorFactory = ThreadExecutor,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.mappings = mappings
        self.store = store
        self.progress = progress or NoProgress()
        self.executor = executor
        self.settings = spec.task_settings
        self.planner = Planner(spec, source.url, mappings)
        self.lobs = self.planner.lobs
        self.converted: dict[tuple[str, str], list[str]] = {}  # convert_schema DDL by table
        self.stop = threading.Event()
        self.runs: dict[str, TableRun] = {}

    def plan(self) -> list[TablePlan]:
        return self.planner.plan(self.source)

    def units(self, plans: list[TablePlan]) -> list[LoadUnit]:
        """The units to load, tables of a higher selection-rule ``load-order`` first (DMS:
        the order is the priority in which tables start; equal ones keep their order)."""
        out = []
        by_order = sorted(
            plans, key=lambda p: -self.mappings.load_order(_ref(p), view=p.source.view)
        )
        for plan in by_order:
            segments = segments_for(plan.source, self.mappings.parallel_load(_ref(plan)))
            self.runs[plan.source.qualified] = TableRun(plan, pending=len(segments))
            out += [LoadUnit(plan, seg, len(segments)) for seg in segments]
        return out

    # -- running -------------------------------------------------------------

    def run(self, plans: list[TablePlan] | None = None, snapshot: str | None = None) -> LoadResult:
        """Load every planned table; ``snapshot`` (exported by a CDC slot) pins the read."""
        if isinstance(self.target, SameEngineTarget):
            self.target.same_engine = same_engine(self.source.url.scheme, self.target.url.scheme)
        plans = self.plan() if plans is None else plans
        tag_objects(self.target, self.mappings, plans)
        map_objects(self.target, self.mappings, plans)
        units = self.units(plans)
        self._say_write_threads(plans)
        self.converted = converted_tables(self.spec, self.source, self.target, plans)
        for plan in plans:
            self._prepare(plan)
        try:
            with self._snapshot(snapshot) as snap:
                self._run_units(units, snap)
                Reloads(self, units, exported=snapshot is not None).run(snap)
        finally:
            if self.stop.is_set():
                self._end_stopped()
        failed = {name: run.failure for name, run in self.runs.items() if run.failure}
        rows = sum(run.rows for run in self.runs.values())
        return LoadResult(len(self.runs), rows, failed)

    def _snapshot(self, exported: str | None) -> AbstractContextManager[str | None]:
        return nullcontext(exported) if exported else self.source.snapshot()

    def _run_units(self, units: list[LoadUnit], snap: str | None) -> None:
        """Run ``units`` through the executor, at most MaxFullLoadSubTasks at once, each
        submitted when a place is free (a unit of a failed table, or after a stop, is not).
        A table's finish (keys, indexes, on the coordinator's target) keeps the place of
        its last unit, as in DMS a table ends before the next one starts."""
        workers = min(self.settings.FullLoadSettings.MaxFullLoadSubTasks, max(len(units), 1))
        executor = self.executor(workers, self.stop)
        with ThreadPoolExecutor(1, "finish") as finisher:
            try:
                self._dispatch(_Places(executor, finisher, workers), deque(units), snap)
            except BaseException:
                self.stop.set()
                executor.cancel()
                raise
            finally:
                executor.close()

    def _dispatch(self, places: _Places, queue: deque[LoadUnit], snap: str | None) -> None:
        while queue or places.running:
            while queue and places.free():
                unit = queue.popleft()
                if self._may_start(self.runs[unit.name]):
                    places.take(self._submit(places.executor, unit, snap), unit)
            if not places.running:
                return
            for unit, result in places.ended():
                if self._ended(unit, result):
                    places.take(places.finisher.submit(self._finish_table, self.runs[unit.name]))

    def _may_start(self, run: TableRun) -> bool:
        return not (run.failure or run.reload is not None or self.stop.is_set())

    def _submit(self, executor: Executor, unit: LoadUnit, snap: str | None) -> Future[UnitResult]:
        run = self.runs[unit.name]
        work = UnitWork(unit, self.spec.source, self.spec.target, snap, self._options(unit))
        return executor.submit(work, TableReport(self, run))

    def _options(self, unit: LoadUnit) -> UnitOptions:
        fresh = isinstance(self.target, RawCopyTarget) and self.target.created_empty(
            unit.plan.target
        )
        src = unit.plan.source
        tags = {}
        if self.mappings.post_processing:
            tags = self.mappings.object_tags(src.schema, src.name)
        return UnitOptions(
            self.settings.ErrorBehavior,
            self.settings.FullLoadSettings.CommitRate,
            self._write_threads(),
            fresh=fresh and unit.parts == 1,
            tags=tags,
            object_mapping=self.mappings.object_mapping(src.schema, src.name),
            task_start=self.target.started if isinstance(self.target, TaskStartTarget) else None,
            task=self.spec.name,
        )

    def _ended(self, unit: LoadUnit, result: UnitResult) -> bool:
        """A unit's result into its table's run; True when the table is to be finished."""
        run = self.runs[unit.name]
        log.debug(
            "table %s: a unit %s in %.1f s, %d rows",
            unit.name,
            result.outcome,
            result.seconds,
            result.rows,
        )
        if result.stop_task:
            self.stop.set()
        if result.outcome is Outcome.DONE:
            self._count(run, 0, final=True)
            return self._unit_done(run)
        if result.outcome is Outcome.RELOAD:
            self._want_reload(run, result.reason)
        elif result.outcome is Outcome.FAILED:
            self._fail_table(run, result.reason)
            if result.data_error and self._policy() is DataErrorPolicyKind.STOP_TASK:
                self.stop.set()
        return False

    def _end_stopped(self) -> None:
        """After a stop, end the tables that were stopped or never started."""
        for run in self.runs.values():
            if run.failure or run.completed:
                continue
            src = run.plan.source
            self.store.table_ended(
                self.spec.name, src.schema, src.name, TableState.CANCELLED, STOPPED
            )
            self.progress.table_done(src.qualified, False)

    def _prepare(self, plan: TablePlan) -> None:
        src, name = plan.source, plan.source.qualified
        self.store.table_planned(self.spec.name, src.schema, src.name, src.estimated_rows)
        mode = self.settings.FullLoadSettings.TargetTablePrepMode
        ddl = self.converted.get((src.schema, src.name))
        try:
            if ddl is not None:
                create_converted(self.target, plan.target, ddl)
                mode = PrepMode.DO_NOTHING
            self.target.prepare(plan.target, mode)
        except OpenDMSError as exc:
            self._fail_table(self.runs[name], str(exc))
            self.runs[name].pending = 0

    def _mark_started(self, run: TableRun) -> None:
        src = run.plan.source
        with run.lock:
            first, run.started = not run.started, True
        if first:
            self.store.table_started(self.spec.name, src.schema, src.name)
            log.info("loading table %s", src.qualified)
            self.progress.table_started(src.qualified, src.estimated_rows)

    def _write_threads(self) -> int:
        """Writers per unit: TargetMetadata.ParallelLoadThreads (0 or 1: one), where the
        target takes several writers into one table at once."""
        threads = max(self.settings.TargetMetadata.ParallelLoadThreads, 1)
        return threads if engine_for(self.target.url).capabilities.parallel_writers else 1

    def _say_write_threads(self, plans: list[TablePlan]) -> None:
        """One info line on what ParallelLoadThreads does in this task."""
        threads = self.settings.TargetMetadata.ParallelLoadThreads
        if threads <= 1:
            return
        scheme = self.target.url.scheme
        if self._write_threads() == 1:
            log.info(
                "task %s: ParallelLoadThreads=%d: a %s target takes one writer at a time; "
                "each table or segment is loaded by one writer",
                self.spec.name,
                threads,
                scheme,
            )
            return
        log.info(
            "task %s: ParallelLoadThreads=%d: each table or segment is written by %d writers "
            "at once, each with its own connection (on a lake, its own files)",
            self.spec.name,
            threads,
            threads,
        )
        raw = [p.source.qualified for p in plans if passthrough_ok(self.source, self.target, p)]
        if raw:
            log.info(
                "task %s: ParallelLoadThreads does not apply to the tables moved by raw COPY "
                "pass-through, one stream per table or segment (faster than several Arrow "
                "writers): %s",
                self.spec.name,
                ", ".join(raw[:5]) + (", …" if len(raw) > 5 else ""),
            )

    def _policy(self) -> DataErrorPolicyKind:
        return self.settings.ErrorBehavior.DataErrorPolicy

    # -- book-keeping --------------------------------------------------------

    def _count(self, run: TableRun, rows: int, final: bool = False) -> None:
        src = run.plan.source
        now = time.monotonic()
        with run.lock:
            run.rows += rows
            total, errors = run.rows, run.errors
            due = final or now - run.saved_at >= PROGRESS_EVERY
            if due:
                run.saved_at = now
        if due:
            self.store.table_progress(self.spec.name, src.schema, src.name, total, errors)
        self.progress.advance(src.qualified, rows)

    def _data_errors(self, run: TableRun, rows: int, logged: list[DataErrorRow]) -> int:
        """Rows with data errors in one of the table's units: counted, recorded
        (LOG_ERROR), and past DataErrorEscalationCount the table fails; the table's count."""
        with run.lock:
            run.errors += rows
            errors = run.errors
        for row in logged:
            self.store.data_error(self.spec.name, row.table, row.key, row.column, row.reason)
        behavior = self.settings.ErrorBehavior
        exc = escalation(run.plan, errors, behavior)
        if exc is not None:
            self._fail_table(run, str(exc))
            if behavior.DataErrorEscalationPolicy == "STOP_TASK":
                self.stop.set()
        return errors

    def _unit_done(self, run: TableRun) -> bool:
        """One of the table's units is done: True when it was the last one."""
        with run.lock:
            run.pending -= 1
            last = run.pending == 0
        return last and not run.failure

    def _finish_table(self, run: TableRun) -> None:
        """All of a table's units are done: the target finishes it (keys, indexes)."""
        src = run.plan.source
        try:
            self.target.finish(run.plan.target)
        except OpenDMSError as exc:
            if exc.retryable:
                self._want_reload(run, str(exc))
            else:
                self._fail_table(run, str(exc))
            return
        except Exception as exc:
            log.exception("table %s: internal error", src.qualified)
            self._fail_table(run, f"internal error: {exc!r}")
            return
        run.completed = True
        self.store.table_ended(self.spec.name, src.schema, src.name, TableState.COMPLETED)
        log.info("loaded table %s (%d rows)", src.qualified, run.rows)
        self.progress.table_done(src.qualified, True)

    def _want_reload(self, run: TableRun, reason: str) -> None:
        """A recoverable error in one of the table's units: the table is loaded again
        once this pass is over (its units not yet started do not start)."""
        with run.lock:
            first, run.reload = run.reload is None, run.reload or reason
        if first:
            log.warning("table %s: %s; it will be loaded again", run.plan.source.qualified, reason)

    def _fail_table(self, run: TableRun, reason: str) -> None:
        src = run.plan.source
        self._count(run, 0, final=True)
        with run.lock:
            if run.failure:
                return
            run.failure = reason
        log.error("table %s failed: %s", src.qualified, reason)
        self.store.table_ended(self.spec.name, src.schema, src.name, TableState.ERROR, reason)
        self.progress.table_done(src.qualified, False)
        if self.settings.ErrorBehavior.TableErrorPolicy == "STOP_TASK":
            self.stop.set()  # TableErrorPolicy STOP_TASK: no other table goes on


class _Places:
    """The places of one pass: units running in the executor and tables finishing."""

    def __init__(self, executor: Executor, finisher: ThreadPoolExecutor, workers: int) -> None:
        self.executor, self.finisher, self.workers = executor, finisher, workers
        self.running: dict[Future[Any], LoadUnit | None] = {}

    def free(self) -> bool:
        return len(self.running) < self.workers

    def take(self, future: Future[Any], unit: LoadUnit | None = None) -> None:
        self.running[future] = unit

    def ended(self) -> list[tuple[LoadUnit, UnitResult]]:
        """Wait for one or more to end: the units among them with their results (a
        finish raises nothing: it records its own outcome)."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            unit = self.running.pop(future)
            result = future.result()
            if unit is not None:
                out.append((unit, result))
        return out


def tag_objects(target: object, mappings: TableMappings, plans: list[TablePlan]) -> None:
    """Hand the post-processing ``add-tag`` rules' tags to a target that tags its
    objects (the S3 lake); other targets have no objects to tag: one warning."""
    if not mappings.post_processing:
        return
    if not isinstance(target, TaggingTarget):
        log.warning("post-processing add-tag rules tag S3 objects: no effect on this target")
        return
    target.set_object_tags(
        {
            (p.target.schema, p.target.name): mappings.object_tags(p.source.schema, p.source.name)
            for p in plans
        }
    )


def map_objects(target: object, mappings: TableMappings, plans: list[TablePlan]) -> None:
    """Hand each table's ``object-mapping`` rule (or None) to a target shaped by them
    (DynamoDB); other targets have no items to shape: one warning when rules are given."""
    if not isinstance(target, ObjectMappingTarget):
        if mappings.object_mappings:
            log.warning("object-mapping rules shape DynamoDB items: no effect on this target")
        return
    target.set_object_mappings(
        {
            (p.target.schema, p.target.name): mappings.object_mapping(
                p.source.schema, p.source.name
            )
            for p in plans
        }
    )


def _ref(plan: TablePlan) -> TableRef:
    return TableRef(plan.source.schema, plan.source.name)


def converted_tables(
    spec: TaskSpec, source: Source, target: Target, plans: list[TablePlan]
) -> dict[tuple[str, str], list[str]]:
    """``convert_schema``: per source table, the statements ``opendms convert`` gives for it,
    under the name the mapping rules give it (see ``opendms.convert.task``)."""
    from opendms.convert import per_table
    from opendms.convert.task import task_conversion

    conversion = task_conversion(spec, target.url, plans)
    return per_table(conversion.generate()) if conversion is not None else {}


def create_converted(target: Target, table: Table, ddl: list[str]) -> None:
    """Drop ``table`` on the target and create it with the converted statements."""
    if not isinstance(target, DdlTarget):
        raise ConfigError(f"{target.url.scheme} targets cannot take converted DDL")
    target.run_ddl(table, ddl)
