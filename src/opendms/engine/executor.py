"""Where full-load units run: the :class:`Executor` seam.

The coordinator (:class:`~opendms.engine.fullload.FullLoad`) submits each unit as a
picklable :class:`~opendms.engine.unitcopy.UnitWork` with the :class:`UnitReport` that
keeps its table's statistics, and gathers :class:`UnitResult` values from the futures.
:class:`ThreadExecutor` (the default) runs :func:`copy_unit` in a thread pool of
``MaxFullLoadSubTasks`` threads, handing it the report and the stop event as they are.
:class:`ProcessExecutor` runs it in worker processes (``spawn``): reports, log records
and results come back over one queue, a drain thread passes them to the coordinator's
objects in order, and a stop request reaches the workers as a process-shared event.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from logging.handlers import QueueHandler
from typing import Any, Protocol

from opendms.engine.rowscreen import DataErrorRow
from opendms.engine.unitcopy import UnitReport, UnitResult, UnitWork, copy_unit

log = logging.getLogger("opendms.fullload")


class Executor(Protocol):
    """Runs units: ``submit`` one (its result in the future), ``cancel`` (running units
    stop at their next batch), ``close`` (wait for the units submitted)."""

    def submit(self, work: UnitWork, report: UnitReport) -> Future[UnitResult]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class ExecutorFactory(Protocol):
    """Makes an executor of ``workers`` units at once that stops when ``stop`` is set."""

    def __call__(self, workers: int, stop: threading.Event) -> Executor: ...


class ThreadExecutor:
    """Units in threads of this process; report and stop event passed as they are."""

    def __init__(self, workers: int, stop: threading.Event) -> None:
        self.pool = ThreadPoolExecutor(workers, "load")
        self.stop = stop

    def submit(self, work: UnitWork, report: UnitReport) -> Future[UnitResult]:
        return self.pool.submit(copy_unit, work, report, self.stop)

    def cancel(self) -> None:
        self.stop.set()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# -- in a worker process ------------------------------------------------------------

_queue: Any = None  # the worker's end of the report queue
_stop: Any = None  # the process-shared stop event


def _worker_init(queue: Any, stop: Any, level: int) -> None:
    """A worker process: its log records go to the coordinator through the queue."""
    global _queue, _stop
    _queue, _stop = queue, stop
    root = logging.getLogger()
    root.handlers[:] = [_ToCoordinator(queue)]
    root.setLevel(level)


class _ToCoordinator(QueueHandler):
    """Log records onto the worker's result queue, tagged as log records."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(("log", 0, record))


class _QueueReport:
    """A unit's report in a worker process: messages to the coordinator. The rows with
    data errors it knows of are its own unit's (the coordinator counts the table's)."""

    def __init__(self, key: int) -> None:
        self.key, self.errors = key, 0

    def started(self) -> None:
        _queue.put(("started", self.key))

    def rows(self, count: int) -> None:
        _queue.put(("rows", self.key, count))

    def data_errors(self, rows: int, logged: list[DataErrorRow]) -> int:
        self.errors += rows
        _queue.put(("errors", self.key, rows, logged))
        return self.errors


def _run_in_worker(key: int, work: UnitWork) -> None:
    """Copy the unit; its result follows its reports on the queue."""
    result = copy_unit(work, _QueueReport(key), _stop)
    _queue.put(("result", key, result))


# -- in the coordinator ---------------------------------------------------------------


class ProcessExecutor:
    """Units in worker processes (a ``spawn`` pool of ``workers``)."""

    def __init__(self, workers: int, stop: threading.Event) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue: Any = ctx.Queue()
        self.shared_stop = ctx.Event()
        level = min(logging.getLogger(n).getEffectiveLevel() for n in ("opendms", log.name))
        self.pool = ProcessPoolExecutor(
            workers, ctx, initializer=_worker_init, initargs=(self.queue, self.shared_stop, level)
        )
        self.stop = stop
        self.keys = itertools.count(1)
        self.pending: dict[int, tuple[UnitReport, Future[UnitResult]]] = {}
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.drain = threading.Thread(target=self._drain, name="load-reports", daemon=True)
        self.watch = threading.Thread(target=self._watch, name="load-stop", daemon=True)
        self.drain.start()
        self.watch.start()

    def submit(self, work: UnitWork, report: UnitReport) -> Future[UnitResult]:
        key = next(self.keys)
        out: Future[UnitResult] = Future()
        with self.lock:
            self.pending[key] = (report, out)
        inner = self.pool.submit(_run_in_worker, key, work)
        inner.add_done_callback(lambda f: self._crashed(key, f))
        return out

    def cancel(self) -> None:
        self.stop.set()
        self.shared_stop.set()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.closed.set()
        self.queue.put(None)
        self.drain.join()
        self.watch.join()

    def _watch(self) -> None:
        """The coordinator's stop request, passed on to the workers."""
        while not self.closed.is_set():
            if self.stop.wait(0.2):
                self.shared_stop.set()
                return

    def _crashed(self, key: int, inner: Future[None]) -> None:
        """A unit that could not run or report (a worker died, a value did not pickle)."""
        exc = inner.exception() if not inner.cancelled() else None
        if exc is None:
            return
        with self.lock:
            entry = self.pending.pop(key, None)
        if entry is not None:
            entry[1].set_exception(exc)

    def _drain(self) -> None:
        while (message := self.queue.get()) is not None:
            try:
                self._handle(message)
            except Exception:
                log.exception("full load: a unit's report failed")

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, key, *args = message
        if kind == "log":
            record: logging.LogRecord = args[0]
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
            return
        with self.lock:
            entry = self.pending.get(key) if kind != "result" else self.pending.pop(key, None)
        if entry is None:
            return
        report, out = entry
        if kind == "result":
            out.set_result(args[0])
        elif kind == "started":
            report.started()
        elif kind == "rows":
            report.rows(args[0])
        else:
            report.data_errors(args[0], args[1])
