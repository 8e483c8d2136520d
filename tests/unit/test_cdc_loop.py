"""The CDC loop's batching and exactly-once book-keeping, with a scripted stream."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from opendms.changes import LSN, Change, Op, Position, Transaction
from opendms.engine.cdcloop import BatchSettings, CdcLoop
from opendms.state import StateStore


def _txn(end: int, n: int = 1) -> Transaction:
    changes = [Change(Op.INSERT, "s", "t", ("id",), (str(i),)) for i in range(n)]
    return Transaction(end, datetime.now(UTC), LSN(end), changes)


def _lsn(txn: Transaction) -> int:
    assert isinstance(txn.end, LSN)
    return txn.end.value


def _loop(
    tmp_path: Path, applied: list[tuple[list[int], str]], confirmed: list[Position]
) -> CdcLoop:
    store = StateStore(tmp_path / "s.db")
    store.save_task("t", "src", "dst", "cdc", "{}")
    store.table_planned("t", "s", "t", 0)

    def apply(batch: list[Transaction], position: str) -> int:
        applied.append(([_lsn(t) for t in batch], position))
        return sum(len(t.changes) for t in batch)

    return CdcLoop("t", apply, confirmed.append, store, BatchSettings(0.0, 30.0, 3))


def test_skips_what_the_checkpoint_covers_and_confirms_after_apply(tmp_path: Path) -> None:
    applied: list[tuple[list[int], str]] = []
    confirmed: list[Position] = []
    loop = _loop(tmp_path, applied, confirmed)
    stream = [_txn(10), _txn(20), None, _txn(30), None]
    end = loop.run(stream, LSN(15), threading.Event(), lambda: False)
    assert applied == [([20], str(LSN(20))), ([30], str(LSN(30)))]
    assert confirmed == [LSN(20), LSN(30)] and end == LSN(30)


def test_batches_by_size_and_stops_when_caught_up(tmp_path: Path) -> None:
    applied: list[tuple[list[int], str]] = []
    loop = _loop(tmp_path, applied, [])
    loop.settings = BatchSettings(30.0, 30.0, 3)
    seen = iter([False, False, False, False, True])
    stream = [_txn(1, 2), _txn(2, 2), _txn(3, 1), _txn(4, 1), None, _txn(5)]
    loop.run(stream, LSN(0), threading.Event(), lambda: next(seen), follow=False)
    assert [b for b, _ in applied] == [[1, 2], [3, 4]]
    counts = loop.store.change_counts("t")
    assert counts["s.t"][0] == 6


def test_phase_turns_live_once_the_cached_changes_are_applied(tmp_path: Path) -> None:
    """A batch that keeps filling (a lake waits for CdcMaxBatchInterval) must not hold the
    phase at "applying cached changes" once what was cached is applied."""
    applied: list[tuple[list[int], str]] = []
    loop = _loop(tmp_path, applied, [])
    loop.settings = BatchSettings(30.0, 30.0, 2, flush_when_idle=False)
    phases: list[str] = []

    def caught_up() -> bool:
        record = loop.store.task("t")
        assert record is not None
        phases.append(record.phase)
        return True  # everything committed before streaming began was delivered

    # txn 1 is cached; txns 2..5 arrive later and keep the batch non-empty
    stream = [_txn(1), _txn(2), _txn(3), _txn(4), _txn(5)]
    loop.run(stream, LSN(0), threading.Event(), caught_up)
    assert [b for b, _ in applied] == [[1, 2], [3, 4]]
    assert phases[:2] == ["applying cached changes"] * 2
    assert phases[-1] == "ongoing replication"
