"""Handlers while a task runs: the outbox the CDC loop fills, a dispatcher per handler.

:class:`HandlerRuntime` is the task's :class:`~opendms.engine.handoff.ChangeHandoff`.
Opened before the run (each handler's process started and its function imported, so a
bad function path fails the run before anything moves), it writes the changes of every
batch to the outbox (:mod:`opendms.handlers.outbox`: pickled chunks, no records made on
the capture thread) before the target applies the batch. While changes stream, a
:class:`Dispatcher` thread per handler reads the outbox from the handler's checkpoint,
keeps the records of its tables, cuts batches (``BatchSize``,
``MaximumBatchingWindowInSeconds``) and delivers them (:mod:`opendms.handlers.delivery`)
to the handler's process; the checkpoint moves once a batch is delivered or dead-lettered.
When streaming ends without a stop request (a run that caught up), the dispatchers first
deliver everything in the outbox.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from opendms.changes import Transaction
from opendms.config import TaskSpec
from opendms.engine.handoff import HandOff, KeyColumns
from opendms.errors import ConfigError, TaskError
from opendms.handlers.delivery import Delivery, HaltedError
from opendms.handlers.outbox import Entry, Item, entries, entry_id
from opendms.handlers.process import HandlerProcess
from opendms.handlers.store import HandlerStore, Row
from opendms.handlersettings import HandlerSpec

log = logging.getLogger("opendms.handlers")
PRUNE_EVERY_S = 2.0
SWITCH_INTERVAL_S = 0.0005


def handler_env(task: str, handler: str) -> dict[str, str]:
    """What a handler process finds in its environment about itself."""
    return {"OPENDMS_TASK": task, "OPENDMS_HANDLER": handler}


class Dispatcher(threading.Thread):
    """Feeds one handler from the outbox, from its checkpoint on."""

    def __init__(
        self,
        spec: HandlerSpec,
        process: HandlerProcess,
        store: HandlerStore,
        labels: list[str],
        key_of: KeyColumns,
    ) -> None:
        super().__init__(name=f"handler {spec.label}", daemon=True)
        self.spec, self.process, self.store, self.labels = spec, process, store, labels
        self.key_of, self.keys = key_of, dict[tuple[str, str], tuple[str, ...]]()
        self.cursor = Cursor(store)
        self.halt = threading.Event()
        self.wake = threading.Event()
        self.passed = store.checkpoint(spec.label).seq
        self.failure: BaseException | None = None
        self.delivery: Delivery[Item] = Delivery(spec, process, self._dead, self.halt, self._error)
        self.pruned_at = 0.0
        self.tables: dict[tuple[str, str], bool] = {}  # (schema, table) -> spec.takes

    def _dead(self, items: list[Item], error: str, attempts: int) -> None:
        rows = [Row(i.seq, i.record_id, i.schema, i.table, i.commit_time, i.text()) for i in items]
        self.store.dead_letter(self.spec.label, rows, error, attempts)

    def _error(self, error: str) -> None:
        self.store.note_error(self.spec.label, error)

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.wake.clear()
                if not self._step():
                    self.wake.wait(0.5)
            self.store.prune(self.labels)
        except HaltedError:
            pass
        except Exception as exc:  # the task fails with it (see HandlerRuntime.check)
            log.exception("handler %s stopped", self.spec.label)
            self.failure = exc

    def _step(self) -> bool:
        """Deliver the next batch; False when the outbox had nothing new."""
        batch, seq, last = self._gather()
        if seq == self.passed:
            return False
        delivered = self.delivery.deliver(batch) if batch else 0
        self.store.advance(self.spec.label, seq, last, delivered)
        self.passed = seq
        if time.monotonic() - self.pruned_at > PRUNE_EVERY_S:
            self.pruned_at = time.monotonic()
            self.store.prune(self.labels)
        return True

    def _gather(self) -> tuple[list[Item], int, str]:
        """The next batch of this handler's records, the outbox seq and record id it
        reaches (past records of other tables too)."""
        size, seq, last = self.spec.batch_size, self.passed, ""
        deadline = time.monotonic() + self.spec.max_batching_window_s
        batch: list[Item] = []
        while len(batch) < size:
            found = self.cursor.after(seq, size - len(batch))
            first, body = self.cursor.first, self.cursor.body
            for at, entry in found:
                change = entry[0]
                if self._takes(change.schema, change.table):
                    batch.append(
                        Item(at, first, body, entry, self._key(change.schema, change.table))
                    )
            if found:
                seq, last = found[-1][0], entry_id(found[-1][1])
                continue
            left = deadline - time.monotonic()
            if not batch or left <= 0 or self.halt.is_set():
                break
            self.wake.wait(min(left, 0.5))
            self.wake.clear()
        return batch, seq, last

    def _key(self, schema: str, table: str) -> tuple[str, ...]:
        key = (schema, table)
        if key not in self.keys:
            self.keys[key] = self.key_of(schema, table)
        return self.keys[key]

    def _takes(self, schema: str, table: str) -> bool:
        key = (schema, table)
        if key not in self.tables:
            self.tables[key] = self.spec.takes(schema, table)
        return self.tables[key]


class HandlerRuntime:
    """The handlers of one task run (a context manager around the run)."""

    def __init__(self, spec: TaskSpec, state: Path) -> None:
        self.task = spec
        self.state = state
        self.processes: list[HandlerProcess] = []
        self.store: HandlerStore | None = None
        self.dispatchers: list[Dispatcher] = []
        self.key_of: KeyColumns = _no_keys
        self.switch = sys.getswitchinterval()

    def __enter__(self) -> HandlerRuntime:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        # each batch is a round trip to a handler process: its dispatcher must get the
        # GIL back soon after the answer (Python's default lets the CDC thread keep it
        # up to 5 ms, which would bound a handler to about 200 batches/s)
        self.switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.store = HandlerStore(self.state, self.task.name)
        for handler in self.task.handlers:
            env = handler_env(self.task.name, handler.label)
            process = HandlerProcess(handler.function, handler.timeout_s, env)
            self.processes.append(process)
            process.launch()
        for index, process in enumerate(self.processes):
            try:
                process.ready()
            except ConfigError as exc:
                where = f"task {self.task.name}"
                path = f"$.handlers[{index}].function"
                raise ConfigError(exc.message, where=where, path=path) from None

    def close(self) -> None:
        self._halt()
        sys.setswitchinterval(self.switch)
        for process in self.processes:
            process.close()
        self.processes.clear()
        if self.store is not None:
            self.store.close()
            self.store = None

    @contextmanager
    def streaming(self, stop: threading.Event, key_of: KeyColumns) -> Iterator[HandOff]:
        """Dispatchers run while changes stream; a run that ends without ``stop`` (it
        caught up) delivers what the outbox holds before it returns."""
        assert self.store is not None
        self.key_of = key_of
        labels = [h.label for h in self.task.handlers]
        self.dispatchers = [
            Dispatcher(h, p, HandlerStore(self.state, self.task.name), labels, key_of)
            for h, p in zip(self.task.handlers, self.processes, strict=True)
        ]
        for dispatcher in self.dispatchers:
            dispatcher.start()
        try:
            yield self.hand_off
            if not stop.is_set():
                self._drain(stop)
        finally:
            self._halt()

    def hand_off(self, batch: Sequence[Transaction]) -> None:
        """Put ``batch``'s changes in the outbox (before the target applies it)."""
        self.check()
        assert self.store is not None
        self.store.append(batch)
        for dispatcher in self.dispatchers:
            dispatcher.wake.set()

    def check(self) -> None:
        """A dispatcher that stopped on an error of its own fails the task."""
        for dispatcher in self.dispatchers:
            if dispatcher.failure is not None:
                label = dispatcher.spec.label
                raise TaskError(
                    f"task {self.task.name}: handler {label} stopped: {dispatcher.failure}"
                ) from dispatcher.failure

    def _drain(self, stop: threading.Event) -> None:
        """Wait until every handler has passed the outbox's last record (or ``stop``)."""
        assert self.store is not None
        last = self.store.last_seq()
        behind = [d.spec.label for d in self.dispatchers if d.passed < last]
        if behind:
            log.info("task %s: waiting for handler(s) %s", self.task.name, ", ".join(behind))
        while not stop.is_set():
            self.check()
            if all(d.passed >= last or not d.is_alive() for d in self.dispatchers):
                break
            time.sleep(0.02)
        self.check()

    def _halt(self) -> None:
        """Stop the dispatchers: each finishes its call in hand (at most its timeout)."""
        for dispatcher in self.dispatchers:
            dispatcher.halt.set()
            dispatcher.wake.set()
        for dispatcher in self.dispatchers:
            dispatcher.join(dispatcher.spec.timeout_s + 5.0)
            if dispatcher.is_alive():
                dispatcher.process.interrupt()
                dispatcher.join()
            dispatcher.store.close()
        self.dispatchers = []


class Cursor:
    """Reads the outbox's chunks for one dispatcher, the newest one kept decoded."""

    def __init__(self, store: HandlerStore) -> None:
        self.store = store
        self.first = 0  # the seq of loaded[0]
        self.body = b""  # the chunk loaded
        self.loaded: list[Entry] = []

    def after(self, seq: int, limit: int) -> list[tuple[int, Entry]]:
        """Up to ``limit`` (seq, entry) of the outbox after ``seq``, in order."""
        if not self.first <= seq + 1 < self.first + len(self.loaded):
            self._load(seq)
        start = max(seq + 1 - self.first, 0)
        part = self.loaded[start : start + limit]
        return list(
            zip(range(self.first + start, self.first + start + len(part)), part, strict=True)
        )

    def _load(self, seq: int) -> None:
        found = self.store.chunks_after(seq, 1)
        if found:
            self.first, self.body = found[0]
            self.loaded = entries(self.body)
        else:
            self.first, self.body, self.loaded = 0, b"", []


def _no_keys(schema: str, table: str) -> tuple[str, ...]:
    return ()
