"""Several writers for one load unit (DMS task setting ``ParallelLoadThreads``).

The unit's thread reads and screens its batches as with one writer and hands each to
a :class:`ParallelWriter`, which passes it through a bounded queue to N writer threads,
each with its own target writer (its own connection, or its own files). The first
writer error is raised to the reader at its next hand-off and the other writers stop
taking batches; ``close`` closes every writer once all is written, ``abort`` aborts
them all.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

import pyarrow as pa

from opendms.endpoints.base import BatchWriter

log = logging.getLogger("opendms.fullload")


def _ignore(rows: int) -> None:
    """The default ``on_written``: nobody counts."""


def abort_all(writers: Sequence[BatchWriter]) -> None:
    """Abort every writer; one that fails to abort is logged and the others still are."""
    for writer in writers:
        try:
            writer.abort()
        except Exception as exc:
            log.warning("aborting a writer failed: %s", exc)


class ParallelWriter:
    """A :class:`BatchWriter` that spreads batches over several writers.

    ``write`` queues a batch (waiting while the queue holds ``depth`` batches) and
    raises the first error a writer hit. ``on_written(rows)`` is called on a writer's
    thread after it wrote a batch, so a count kept there is exactly what was written.
    The writers' threads always take what is queued (after an error they drop it), so
    the reader never waits forever.
    """

    def __init__(
        self,
        writers: Sequence[BatchWriter],
        depth: int,
        on_written: Callable[[int], None] = _ignore,
        name: str = "write",
    ) -> None:
        self.writers = list(writers)
        self.queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(max(depth, 1))
        self.on_written = on_written
        self.failed = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.closed = 0  # writers closed so far (in order): abort leaves them be
        self.joined = False
        self.threads = [
            threading.Thread(target=self._drain, args=(w,), name=f"{name}-{i + 1}", daemon=True)
            for i, w in enumerate(self.writers)
        ]
        for thread in self.threads:
            thread.start()

    @classmethod
    def open(
        cls,
        opener: Callable[[], BatchWriter],
        count: int,
        depth: int,
        on_written: Callable[[int], None] = _ignore,
        name: str = "write",
    ) -> ParallelWriter:
        """``count`` writers from ``opener``; if one cannot be opened, those opened are
        aborted and the error goes up."""
        writers: list[BatchWriter] = []
        try:
            for _ in range(count):
                writers.append(opener())
        except BaseException:
            abort_all(writers)
            raise
        return cls(writers, depth, on_written, name)

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` for the next free writer; a writer's error is raised here."""
        self._raise_failure()
        self.queue.put(batch)

    def close(self) -> int:
        """Wait until every queued batch is written, then close every writer; the rows
        the writers wrote. A writer's error is raised (then ``abort`` the rest)."""
        self._join()
        self._raise_failure()
        rows = 0
        for writer in self.writers:
            rows += writer.close()
            self.closed += 1
        return rows

    def abort(self) -> None:
        """Drop what is queued, wait for the batches being written, abort every writer
        not yet closed."""
        self.failed.set()
        self._join()
        abort_all(self.writers[self.closed :])

    # -- the writer threads ----------------------------------------------------

    def _drain(self, writer: BatchWriter) -> None:
        """One writer's thread: write what it takes until its end mark."""
        while (batch := self.queue.get()) is not None:
            if self.failed.is_set():
                continue  # an error elsewhere (or an abort): drop it
            try:
                writer.write(batch)
                self.on_written(batch.num_rows)
            except BaseException as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.failed.set()

    def _raise_failure(self) -> None:
        if self.error is not None:
            raise self.error

    def _join(self) -> None:
        """One end mark per writer thread, then wait for them all (once)."""
        if self.joined:
            return
        self.joined = True
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
