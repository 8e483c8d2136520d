"""The full-load runner: plan tables, prepare targets, copy units in parallel.

All readers share one source snapshot. A table whose unit fails is marked
``Table error`` and the task ends ``failed`` with the reason; other tables go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

import pyarrow as pa

from opendms.arrowutil import read_rejections
from opendms.config import DataErrorPolicyKind, TaskSpec
from opendms.endpoints import engine_for, same_database, same_engine, table_identity
from opendms.endpoints.base import BatchWriter, PrepMode, Rejection, Source, Target
from opendms.endpoints.engine import (
    DdlTarget,
    RawCopySource,
    RawCopyTarget,
    SameEngineTarget,
    TaggingTarget,
)
from opendms.engine.parallelwrite import ParallelWriter
from opendms.engine.progress import NoProgress, Progress
from opendms.engine.recover import Retries
from opendms.engine.reload import Reloads
from opendms.engine.rowscreen import RowScreen
from opendms.engine.units import LoadUnit, segments_for
from opendms.errors import (
    ConfigError,
    DataError,
    OpenDMSError,
    StopRequested,
    TaskError,
)
from opendms.mapping import TableMappings, TablePlan, evaluate_outputs
from opendms.mapping.expressions import Truncation
from opendms.mapping.lobs import lob_policy
from opendms.model import ColumnType, Kind, ReadPlan, Segment, Table, TableRef
from opendms.state import StateStore, TableState

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
    reload: OpenDMSError | None = None  # a recoverable error: load the table again
    retries: Retries | None = None


@dataclass(frozen=True)
class LoadResult:
    tables: int
    rows: int
    failed: dict[str, str]


def selected(mappings: TableMappings, source: Source) -> list[TableRef]:
    """The source tables (and views, when a rule's table-type asks for them) the
    selection rules choose."""
    views = source.list_views() if mappings.wants_views else []
    return mappings.select(source.list_tables(), views)


_warned_tablespaces: set[str] = set()
_warned_lobs: set[tuple[str, str]] = set()


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
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.mappings = mappings
        self.store = store
        self.progress = progress or NoProgress()
        self.settings = spec.task_settings
        self.lobs = lob_policy(self.settings.TargetMetadata, where=f"task {spec.name}")
        self.converted: dict[tuple[str, str], list[str]] = {}  # convert_schema DDL by table
        self.stop = threading.Event()
        self.runs: dict[str, TableRun] = {}

    # -- planning -----------------------------------------------------------

    def plan(self) -> list[TablePlan]:
        refs = selected(self.mappings, self.source)
        if not refs and self.settings.ErrorBehavior.FailOnNoTablesCaptured:
            raise TaskError(
                "no tables captured: the selection rules match no source table "
                "(set ErrorBehavior.FailOnNoTablesCaptured to false to allow this)"
            )
        return self.plan_tables([self.source.describe(ref) for ref in refs])

    def plan_tables(self, tables: list[Table]) -> list[TablePlan]:
        """The plans of described source tables: the mapping rules applied, no I/O."""
        self.mappings.check_removals(tables)
        plans = [self.plan_one(table) for table in tables]
        self._log_limits(plans)
        self._refuse_self_copy(plans)
        self._refuse_collisions(plans)
        self._warn_tablespaces(plans)
        return plans

    def _log_limits(self, plans: list[TablePlan]) -> None:
        """Which LOB limits the tables have: the task's once, a table's own per table."""
        policy = self.settings.ErrorBehavior.DataTruncationErrorPolicy.value
        limited = [p for p in plans if any(o.lob_limit is not None for o in p.outputs)]
        if any(p.lobs == self.lobs for p in limited):
            log.info(
                "task %s: limited LOB mode: LOB values longer than %d KB are truncated "
                "(TargetMetadata.LobMaxSize; DataTruncationErrorPolicy %s)",
                self.spec.name,
                self.lobs.max_kb,
                policy,
            )
        for plan in limited:
            if plan.lobs != self.lobs:
                log.info(
                    "table %s: limited LOB mode: LOB values longer than %d KB are truncated "
                    "(its table-settings %s; DataTruncationErrorPolicy %s)",
                    plan.source.qualified,
                    plan.lobs.max_kb,
                    plan.lobs.setting,
                    policy,
                )

    def _warn_tablespaces(self, plans: list[TablePlan]) -> None:
        """Tablespace rules act on PostgreSQL targets only: said once per task elsewhere."""
        if self.target.url.scheme.startswith("postgres"):
            return
        named = [p for p in plans if p.target.tablespace or p.target.index_tablespace]
        if named and self.spec.name not in _warned_tablespaces:
            _warned_tablespaces.add(self.spec.name)
            log.warning(
                "task %s: table-tablespace/index-tablespace rules apply to PostgreSQL "
                "targets only; %s target tables are created without them (%s)",
                self.spec.name,
                self.target.url.scheme,
                ", ".join(p.target.qualified for p in named[:3]),
            )

    def plan_one(self, table: Table) -> TablePlan:
        """The plan of one described source table (TargetSchema and the LOB settings
        applied: the task's, or the table's own ``lob-settings``)."""
        plan = self.mappings.plan(table, self.lobs)
        self._warn_lobs(plan)
        schema = self.settings.TargetMetadata.TargetSchema
        return replace(plan, target=replace(plan.target, schema=schema)) if schema else plan

    def _warn_lobs(self, plan: TablePlan) -> None:
        """SupportLobs false: one warning per table naming the LOB columns left out (and
        those kept as part of the key)."""
        if not (plan.lobs_dropped or plan.lob_keys_kept):
            return
        key = (self.spec.name, plan.source.qualified)
        if key in _warned_lobs:
            return
        _warned_lobs.add(key)
        kept = ""
        if plan.lob_keys_kept:
            kept = f"; kept as part of the key: {', '.join(plan.lob_keys_kept)}"
        log.warning(
            "table %s: LOB columns not migrated (TargetMetadata.SupportLobs false): %s%s",
            plan.source.qualified,
            ", ".join(plan.lobs_dropped) or "none",
            kept,
        )

    def _refuse_self_copy(self, plans: list[TablePlan]) -> None:
        """Never let a target prep mode drop or truncate the source table itself."""
        src_url, dst_url = self.source.url, self.target.url
        if not same_database(src_url, dst_url):
            return
        for plan in plans:
            src, dst = plan.source, plan.target
            if table_identity(src_url, src.schema, src.name) == table_identity(
                dst_url, dst.schema, dst.name
            ):
                raise TaskError(
                    f"table {src.qualified}: the target is the source table itself "
                    "(same database, schema and name); rename it with a transformation rule "
                    "or choose another target"
                )

    def _refuse_collisions(self, plans: list[TablePlan]) -> None:
        """Two source tables must not load into one target table."""
        seen: dict[tuple[str, ...], TablePlan] = {}
        for plan in plans:
            dst = plan.target
            first = seen.setdefault(table_identity(self.target.url, dst.schema, dst.name), plan)
            if first is not plan:
                raise ConfigError(
                    f"source tables {first.source.qualified} and {plan.source.qualified} "
                    f"both map to target table {dst.qualified}; rename one of them with a "
                    "transformation rule",
                    where=f"task {self.spec.name}",
                    path="$.table_mappings",
                )

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
            out += [LoadUnit(plan, seg) for seg in segments]
        return out

    # -- running -------------------------------------------------------------

    def run(self, plans: list[TablePlan] | None = None, snapshot: str | None = None) -> LoadResult:
        """Load every planned table; ``snapshot`` (exported by a CDC slot) pins the read."""
        if isinstance(self.target, SameEngineTarget):
            self.target.same_engine = same_engine(self.source.url.scheme, self.target.url.scheme)
        plans = self.plan() if plans is None else plans
        tag_objects(self.target, self.mappings, plans)
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
        workers = min(self.settings.FullLoadSettings.MaxFullLoadSubTasks, max(len(units), 1))
        with ThreadPoolExecutor(workers, "load") as pool:
            futures = [pool.submit(self._run_unit, unit, snap) for unit in units]
            self._wait(futures)

    def _wait(self, futures: list[Future[None]]) -> None:
        """Wait for every unit; the first one that raises stops the others."""
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for fut in done:
                fut.result()
        except BaseException:
            self.stop.set()
            raise

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

    def _run_unit(self, unit: LoadUnit, snap: str | None) -> None:
        run = self.runs[unit.name]
        if run.failure or run.reload is not None or self.stop.is_set():
            return
        self._mark_started(run)
        try:
            self._copy(unit, run, snap)
            self._unit_done(run)
        except StopRequested:
            return
        except OpenDMSError as exc:
            if exc.retryable:
                self._want_reload(run, exc)
                return
            self._fail_table(run, str(exc))
            if self._policy() is DataErrorPolicyKind.STOP_TASK and isinstance(exc, DataError):
                self.stop.set()
        except Exception as exc:
            log.exception("table %s: internal error", unit.name)
            self._fail_table(run, f"internal error: {exc!r}")

    def _mark_started(self, run: TableRun) -> None:
        src = run.plan.source
        with run.lock:
            first, run.started = not run.started, True
        if first:
            self.store.table_started(self.spec.name, src.schema, src.name)
            self.progress.table_started(src.qualified, src.estimated_rows)

    def _copy(self, unit: LoadUnit, run: TableRun, snap: str | None) -> None:
        raw = passthrough_ok(self.source, self.target, unit.plan)
        writers = self._write_threads()
        how = "raw COPY pass-through" if raw else "Arrow batches"
        log.info(
            "table %s: %s", unit.name, how if raw or writers == 1 else f"{how}, {writers} writers"
        )
        if raw:
            self._copy_raw(unit, run, snap)
            return
        writer = self._writer(unit, run)
        counted = isinstance(writer, ParallelWriter)  # its writers count what they wrote
        try:
            for batch in self._batches(unit, run, snap):
                if self.stop.is_set():
                    raise StopRequested
                kept = self._screen(run, batch)
                if kept.num_rows:
                    writer.write(kept)
                if not counted:
                    self._count(run, kept.num_rows)
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def _writer(self, unit: LoadUnit, run: TableRun) -> BatchWriter:
        """The unit's writer: one target writer, or ParallelLoadThreads of them behind a
        :class:`ParallelWriter` (each counts the rows it wrote)."""
        seg: int | str | None = None
        if unit.segment and unit.segment.name:
            seg = unit.segment.name
        elif unit.segment and len(self._segments(run)) > 1:
            seg = unit.segment.index
        threads = self._write_threads()
        if threads == 1:
            return self.target.writer(unit.plan.target, seg)
        return ParallelWriter.open(
            lambda: self.target.writer(unit.plan.target, seg),
            threads,
            depth=1,  # writers busy, one batch waiting, one being read: memory stays bounded
            on_written=lambda rows: self._count(run, rows),
            name=f"write-{unit.plan.source.name}",
        )

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

    def _copy_raw(self, unit: LoadUnit, run: TableRun, snap: str | None) -> None:
        """Same-engine fast path: the source's binary COPY goes straight to the target."""
        plan = unit.plan
        read = ReadPlan(plan.source, plan.read_columns, plan.filters, unit.segment)
        spec = self.source.copy_spec(read, snap)  # type: ignore[attr-defined]
        counted = 0

        def on_rows(rows: int) -> None:
            nonlocal counted
            counted += rows
            self._count(run, rows)

        copy_from = self.target.copy_from  # type: ignore[attr-defined]
        only_writer = len(self._segments(run)) == 1
        total = copy_from(plan.target, spec, on_rows, self.stop, only_writer)
        self._count(run, total - counted)

    def _segments(self, run: TableRun) -> list[Segment | None]:
        return segments_for(run.plan.source, self.mappings.parallel_load(_ref(run.plan)))

    def _batches(self, unit: LoadUnit, run: TableRun, snap: str | None) -> Iterator[pa.RecordBatch]:
        plan = unit.plan
        rate = self.settings.FullLoadSettings.CommitRate
        read = ReadPlan(plan.source, plan.read_columns, plan.filters, unit.segment, rate)
        for batch in self.source.read(read, snap):
            found = [Rejection(*r) for r in read_rejections(batch)]
            if found:
                batch = RowScreen(self).reject(run, batch, found)
            yield from self._convert(plan, batch)

    def _truncated(
        self, plan: TablePlan, out: pa.RecordBatch, cut: list[Truncation]
    ) -> pa.RecordBatch:
        """Expression results cut to their string(n), LOBs cut to their limit:
        DataTruncationErrorPolicy."""
        if not cut:
            return out
        return RowScreen(self).truncated(self.runs[plan.source.qualified], out, cut)

    def _convert(self, plan: TablePlan, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        cut: list[Truncation] = []
        try:
            out = evaluate_outputs(batch, plan, truncations=cut)
        except DataError:
            if self._policy() not in (
                DataErrorPolicyKind.IGNORE_RECORD,
                DataErrorPolicyKind.LOG_ERROR,
            ):
                raise
        else:
            yield self._truncated(plan, out, cut)
            return
        yield from self._convert_rows(plan, batch)

    def _convert_rows(self, plan: TablePlan, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """Slow path: isolate the rows whose values cannot be converted."""
        run = self.runs[plan.source.qualified]
        for i in range(batch.num_rows):
            row = batch.slice(i, 1)
            cut: list[Truncation] = []
            try:
                out = evaluate_outputs(row, plan, truncations=cut)
            except DataError as exc:
                RowScreen(self).log_rejects(run, row, [Rejection(0, exc.column, exc.message)])
                continue
            yield self._truncated(plan, out, cut)

    # -- data errors ---------------------------------------------------------

    def _policy(self) -> DataErrorPolicyKind:
        return self.settings.ErrorBehavior.DataErrorPolicy

    def _screen(self, run: TableRun, batch: pa.RecordBatch) -> pa.RecordBatch:
        return RowScreen(self).screen(run, batch)

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

    def _unit_done(self, run: TableRun) -> None:
        self._count(run, 0, final=True)
        with run.lock:
            run.pending -= 1
            last = run.pending == 0
        if not last or run.failure:
            return
        src = run.plan.source
        try:
            self.target.finish(run.plan.target)
        except OpenDMSError as exc:
            if exc.retryable:
                self._want_reload(run, exc)
            else:
                self._fail_table(run, str(exc))
            return
        run.completed = True
        self.store.table_ended(self.spec.name, src.schema, src.name, TableState.COMPLETED)
        self.progress.table_done(src.qualified, True)

    def _want_reload(self, run: TableRun, exc: OpenDMSError) -> None:
        """A recoverable error in one of the table's units: the table is loaded again
        once this pass is over (its other units stop early)."""
        with run.lock:
            first, run.reload = run.reload is None, run.reload or exc
        if first:
            log.warning("table %s: %s; it will be loaded again", run.plan.source.qualified, exc)

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
