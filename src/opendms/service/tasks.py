"""The task service: one task lifecycle for the command line, and for a server.

:class:`TaskService` creates tasks, runs them in the foreground, starts, stops, resumes
and reloads them in the background (each as its own process, under the task's run
lock), reports their status, table statistics and data errors, and deletes them with
their capture objects. Its methods return values and raise :class:`OpenDMSError`; they
print nothing. Every status change goes through the state machine
(:mod:`opendms.state.status`); the service reads and writes tasks through the
:class:`~opendms.state.TaskStore` Protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opendms.config import TaskSpec, load_task_file
from opendms.errors import ConfigError, OpenDMSError, TaskError
from opendms.handlers.store import drop_task
from opendms.service import control
from opendms.service.replication import drop_replication
from opendms.state import StateStore, TableStats, TaskRecord, TaskStatus, TaskStore
from opendms.state.status import transition
from opendms.state.store import default_path

if TYPE_CHECKING:
    from opendms.assess import Check
    from opendms.engine.backlog import BacklogReport
    from opendms.engine.fullload import LoadResult
    from opendms.engine.progress import Progress

STOP_TIMEOUT = 120.0  # seconds ``stop`` waits for the task's process by default


class AssessmentFailedError(OpenDMSError):
    """The premigration assessment before a run found failed checks (``checks``)."""

    def __init__(self, task: str, checks: list[Check]) -> None:
        self.task = task
        self.checks = checks
        super().__init__(
            f"task {task}: {len(checks)} assessment check(s) failed ("
            + ", ".join(c.id for c in checks)
            + "); fix them or run with --skip-assessment"
        )


class TaskExistsError(ConfigError):
    """``create`` of a task whose name is taken (without ``replace``)."""


@dataclass(frozen=True)
class TaskInfo:
    """A task's status: its record, table statistics and, for a CDC task, what its
    source retains for it (None when not asked for, or for a full-load task)."""

    record: TaskRecord
    tables: list[TableStats]
    backlog: BacklogReport | None = None


@dataclass(frozen=True)
class RunResult:
    """How a foreground run ended: the task's record and statistics after it, and what
    its full load did."""

    record: TaskRecord
    tables: list[TableStats]
    load: LoadResult


@dataclass(frozen=True)
class Launched:
    """A task started in the background: its process and log file."""

    name: str
    pid: int
    log: Path


@dataclass(frozen=True)
class DataErrorRow:
    """A row an error policy skipped or logged."""

    table: str
    key: str
    column: str
    reason: str


@dataclass(frozen=True)
class Deleted:
    """A deleted task, with what was left on its source (warnings to show)."""

    name: str
    warnings: tuple[str, ...] = ()


class TaskService:
    """The lifecycle of the tasks of one state store.

    ``store``: the store, or the path of the state file, opened (with ``open_store``)
    when first needed; None: ``OPENDMS_STATE`` or ``~/.opendms/state.db``. A task file
    may name its own state file (``state:``): running or starting it uses that one."""

    def __init__(
        self,
        store: TaskStore | str | Path | None = None,
        *,
        open_store: Callable[[Path], TaskStore] = StateStore,
    ) -> None:
        if store is None or isinstance(store, str | Path):
            self._store: TaskStore | None = None
            self.state_path = Path(store) if store else default_path()
        else:
            self._store = store
            self.state_path = store.path
        self._open_store = open_store
        self._owned: list[TaskStore] = []  # stores this service opened, to close
        self._opened: dict[Path, TaskStore] = {}  # the stores task files name, by path

    @property
    def store(self) -> TaskStore:
        if self._store is None:
            self._store = self._open_store(self.state_path)
            self._owned.append(self._store)
        return self._store

    def close(self) -> None:
        """Close the stores this service opened (it opens them again when needed)."""
        for store in [*self._owned, *self._opened.values()]:
            store.close()
        if self._store in self._owned:
            self._store = None
        self._owned.clear()
        self._opened.clear()

    # --- definition -------------------------------------------------------------------

    @staticmethod
    def load(file: str | Path) -> TaskSpec:
        """Read and validate a task file (YAML or JSON)."""
        return load_task_file(file)

    def create(
        self, spec: TaskSpec, *, file: Path | None = None, replace: bool = False
    ) -> TaskRecord:
        """Record a task (``creating``, then ``ready``) without running it; ``file``: its
        task file, for ``start``. ``replace`` redefines an existing task (not while it
        runs); without it an existing name is a :class:`TaskExistsError`."""
        from opendms.engine.task import register

        store = self._store_for(spec)
        if store.task(spec.name) is not None:
            if not replace:
                raise TaskExistsError(f"a task named {spec.name!r} exists in {store.path}")
            control.check_not_running(store, spec.name)
        register(spec, store)
        if file is not None:
            store.set_file(spec.name, str(file.resolve()))
        return control.record_of(store, spec.name)

    def delete(self, name: str, *, file: Path | None = None) -> Deleted:
        """Forget task ``name`` and its statistics (``deleting``, then gone). A CDC task's
        capture objects on the source are dropped with ``file`` (or the task file on
        record); without one they stay and the result's warnings say how to drop them.
        A task that runs is refused: stop it first (its process holds the slot)."""
        store = self.store
        record = control.record_of(store, name)
        control.check_not_running(store, name)
        before = record.status
        if before is not TaskStatus.DELETING:  # else: finish a delete cut short
            self._begin_delete(store, name)
        try:
            warnings: list[str] = []
            if record.migration_type != "full-load":
                known = Path(record.file) if record.file and Path(record.file).is_file() else None
                warnings = drop_replication(name, record.source, file or known)
        except BaseException:
            if before is not TaskStatus.DELETING:  # back as it was
                transition(store, name, before, stamp=False, conditional=True)
            raise
        store.delete_task(name)
        drop_task(store.path, name)
        return Deleted(name, tuple(warnings))

    @staticmethod
    def _begin_delete(store: TaskStore, name: str) -> None:
        if not transition(store, name, TaskStatus.DELETING, conditional=True):
            control.check_not_running(store, name)  # a run started meanwhile
            now = store.task(name)
            status = now.status.value if now is not None else "gone"
            raise TaskError(f"task {name!r} changed while being deleted (now {status}); try again")

    # --- running ----------------------------------------------------------------------

    def assess(self, spec: TaskSpec) -> list[Check]:
        """The premigration assessment that precedes a run: its checks, or
        :class:`AssessmentFailedError` with the failed ones."""
        from opendms.assess import assess, failed

        checks = assess(spec)
        bad = failed(checks)
        if bad:
            raise AssessmentFailedError(spec.name, bad)
        return checks

    def run(
        self,
        spec: TaskSpec,
        *,
        file: Path | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        follow: bool = False,
        fresh: bool = False,
        assess: bool = True,
    ) -> RunResult:
        """Run a task in this process, under its run lock (``task run``): first the
        premigration assessment (``assess``), then the full load and/or CDC until done,
        caught up or ``stop`` is set (``follow``: CDC keeps applying until stopped;
        ``fresh``: a new capture position and full load). ``file``: the task file, kept
        on record for ``start``, ``resume`` and ``reload``. A failed run raises (its
        status says failed, with the reason); :class:`StopRequested` when stopped while
        waiting to retry."""
        from opendms.service.run import RunOptions, run_task

        if assess:
            self.assess(spec)
        store = self._run_store(spec)
        path = str(file.resolve()) if file is not None else ""
        options = RunOptions(progress, stop, follow, fresh, path)
        load = run_task(spec, store, options)
        record = store.task(spec.name)
        if record is None:
            raise TaskError(f"task {spec.name!r} was deleted while it ran")
        return RunResult(record, store.tables(spec.name), load)

    def start(self, name: str, *, file: Path | None = None) -> Launched:
        """Start task ``name`` in the background: its first run (DMS start-replication;
        afterwards ``resume`` or ``reload``; a full-load task may start again)."""
        return self._launch(name, file, fresh=False, first=True)

    def resume(self, name: str, *, file: Path | None = None) -> Launched:
        """Resume task ``name`` in the background from its last applied position."""
        return self._launch(name, file, fresh=False, first=False)

    def reload(self, name: str, *, file: Path | None = None) -> Launched:
        """Start task ``name`` over in the background: new capture position, full load."""
        return self._launch(name, file, fresh=True, first=False)

    def _launch(self, name: str, file: Path | None, fresh: bool, first: bool) -> Launched:
        """Returns once the task's process holds the task's run lock (a ``stop`` after it
        finds it) and, within a few seconds, reports running; a task that fails at once
        is an error with its log's last lines. ``file``: default, the one on record."""
        store = self.store
        path = control.task_file(store, name, file)
        spec = load_task_file(path)
        if spec.name != name:
            raise ConfigError(f"task file {path} defines task {spec.name!r}, not {name!r}")
        control.check_not_running(store, name)
        if first:
            control.check_first_start(store, name)
        pid, log = control.spawn(self._store_for(spec), name, path, fresh)
        return Launched(name, pid, log)

    def stop(self, name: str, *, timeout: float = STOP_TIMEOUT) -> TaskRecord | None:
        """Stop task ``name``: its process applies the batch in hand, records its position
        and exits; its record after (None: stopped before its first run recorded it). A
        task whose process is gone is returned failed; one not running is an error."""
        return control.stop(self.store, name, timeout)

    # --- reading ----------------------------------------------------------------------

    def record(self, name: str) -> TaskRecord:
        """Task ``name``'s record, a vanished process reconciled (failed); ConfigError
        for an unknown task."""
        return control.record_of(self.store, name)

    def fresh_record(self, name: str) -> TaskRecord:
        """:meth:`record`, read now (a caching subclass never answers it from a cache)."""
        return self.record(name)

    def status(self, name: str, *, backlog: bool = True) -> TaskInfo:
        """Task ``name``'s status (``backlog``: with what its source retains for it)."""
        return self._info(self.record(name), backlog)

    def statuses(self, *, backlog: bool = True) -> list[TaskInfo]:
        """Every task's status, by name."""
        store = self.store
        return [self._info(control.reconciled(store, r), backlog) for r in store.tasks()]

    def _info(self, record: TaskRecord, backlog: bool) -> TaskInfo:
        from opendms.engine.backlog import task_backlog

        report = task_backlog(record) if backlog else None
        return TaskInfo(record, self.store.tables(record.name), report)

    def tables(self, name: str) -> list[TableStats]:
        """Task ``name``'s table statistics."""
        self.record(name)
        return self.store.tables(name)

    def errors(self, name: str, *, table: str | None = None) -> list[DataErrorRow]:
        """Task ``name``'s data errors (``table``: ``schema.table``, only that table's)."""
        store = self.store
        self.record(name)
        found = [
            DataErrorRow(*e) for e in store.data_errors(name) if table is None or e[0] == table
        ]
        if (
            table is not None
            and not found
            and table not in {f"{t.schema}.{t.name}" for t in store.tables(name)}
        ):
            raise ConfigError(f"task {name!r} has no table {table!r}")
        return found

    # --- stores -----------------------------------------------------------------------

    def state_of(self, spec: TaskSpec) -> Path:
        """The state store file of ``spec``'s task (its logs are beside it)."""
        return Path(spec.state) if spec.state else self.state_path

    def _store_for(self, spec: TaskSpec) -> TaskStore:
        """The store of ``spec``'s task: the one its file names, or this service's."""
        if not spec.state or Path(spec.state) == self.state_path:
            return self.store
        path = Path(spec.state)
        if path not in self._opened:
            self._opened[path] = self._open_store(path)
        return self._opened[path]

    def _run_store(self, spec: TaskSpec) -> StateStore:
        """The store a run of ``spec`` writes its progress to (table statistics, CDC
        schema history, validation): the engine writes through the SQLite
        :class:`StateStore`, which the task's store must be (a background run opens it
        at the same path)."""
        store = self._store_for(spec)
        if not isinstance(store, StateStore):
            raise ConfigError(
                f"task {spec.name!r}: a run records its progress in the SQLite state store; "
                f"this service's store is a {type(store).__name__}"
            )
        return store
