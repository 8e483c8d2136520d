"""ParallelWriter (ParallelLoadThreads): batches spread over several writers, the first
writer error stops the reader and the other writers, every writer closed or aborted."""

from __future__ import annotations

import itertools
import threading
import time

import pyarrow as pa
import pytest

from opendms.engine.parallelwrite import ParallelWriter


class WriteError(Exception):
    pass


class FakeWriter:
    """Records the ids it wrote and whether it was closed or aborted; the ``fail_at``-th
    write of all the writers sharing ``seen`` raises."""

    def __init__(self, seen: itertools.count[int], fail_at: int = 0, pause: float = 0.0) -> None:
        self.seen, self.fail_at, self.pause = seen, fail_at, pause
        self.ids: list[int] = []
        self.closed = self.aborted = False

    def write(self, batch: pa.RecordBatch) -> None:
        if next(self.seen) + 1 == self.fail_at:
            raise WriteError("disk full")
        time.sleep(self.pause)
        self.ids += [v for v in batch.column("id").to_pylist() if v is not None]

    def close(self) -> int:
        self.closed = True
        return len(self.ids)

    def abort(self) -> None:
        self.aborted = True


def _batch(i: int, rows: int = 10) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": list(range(i * rows, (i + 1) * rows))})


def test_every_batch_is_written_once_and_every_writer_closed() -> None:
    seen = itertools.count()
    writers = [FakeWriter(seen, pause=0.001) for _ in range(4)]
    counted: list[int] = []
    lock = threading.Lock()

    def on_written(rows: int) -> None:
        with lock:
            counted.append(rows)

    parallel = ParallelWriter(writers, depth=4, on_written=on_written)
    for i in range(50):
        parallel.write(_batch(i))
    assert parallel.close() == 500
    assert sorted(x for w in writers for x in w.ids) == list(range(500))
    assert sum(counted) == 500 and len(counted) == 50
    assert all(w.closed and not w.aborted for w in writers)
    assert sum(1 for w in writers if w.ids) > 1  # the work was shared


def test_a_writer_error_stops_the_reader_and_the_other_writers() -> None:
    seen = itertools.count()
    writers = [FakeWriter(seen, fail_at=5, pause=0.005) for _ in range(3)]
    parallel = ParallelWriter(writers, depth=2)
    handed = 0
    with pytest.raises(WriteError, match="disk full") as raised:
        for i in range(100):
            parallel.write(_batch(i))
            handed += 1
        parallel.close()
    parallel.abort()
    assert raised.value is parallel.error
    # the reader learnt of the error soon: 4 written, 2 being written, 2 queued, 1 more
    assert handed < 15
    # after the error no writer took another batch: 4 before it, at most 2 in flight
    assert sum(len(w.ids) for w in writers) <= 6 * 10
    assert all(w.aborted and not w.closed for w in writers)
    assert all(not t.is_alive() for t in parallel.threads)


def test_an_error_seen_only_at_close_is_raised_there() -> None:
    seen = itertools.count()
    writers = [FakeWriter(seen, fail_at=3) for _ in range(2)]
    parallel = ParallelWriter(writers, depth=8)
    for i in range(3):
        parallel.write(_batch(i))
    with pytest.raises(WriteError):
        parallel.close()
    parallel.abort()
    assert all(w.aborted and not w.closed for w in writers)


def test_a_failed_close_aborts_the_writers_not_yet_closed() -> None:
    seen = itertools.count()
    writers = [FakeWriter(seen) for _ in range(3)]

    def broken_close() -> int:
        raise WriteError("cannot publish")

    writers[1].close = broken_close  # type: ignore[method-assign]
    parallel = ParallelWriter(writers, depth=2)
    parallel.write(_batch(0))
    with pytest.raises(WriteError, match="publish"):
        parallel.close()
    parallel.abort()
    assert [w.closed for w in writers] == [True, False, False]
    assert [w.aborted for w in writers] == [False, True, True]


def test_abort_on_a_stop_drops_what_is_queued_and_aborts_every_writer() -> None:
    seen = itertools.count()
    gate = threading.Event()

    class Slow(FakeWriter):
        def write(self, batch: pa.RecordBatch) -> None:
            gate.wait(5)
            super().write(batch)

    writers = [Slow(seen) for _ in range(2)]
    parallel = ParallelWriter(writers, depth=4)
    for i in range(6):  # 2 being written, 4 queued
        parallel.write(_batch(i))
    threading.Timer(0.05, gate.set).start()
    parallel.abort()  # as the reader does on StopRequested
    assert sum(len(w.ids) for w in writers) <= 2 * 10
    assert all(w.aborted and not w.closed for w in writers)


def test_open_aborts_the_writers_opened_when_one_cannot_be() -> None:
    seen = itertools.count()
    opened: list[FakeWriter] = []

    def opener() -> FakeWriter:
        if len(opened) == 2:
            raise WriteError("too many connections")
        opened.append(FakeWriter(seen))
        return opened[-1]

    with pytest.raises(WriteError, match="connections"):
        ParallelWriter.open(opener, 4, depth=4)
    assert len(opened) == 2 and all(w.aborted for w in opened)
