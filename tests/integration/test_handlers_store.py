"""The handlers' tables in a real state file, and a real handler process: crashes,
timeouts, prints and exceptions of the function come back as function errors."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from opendms.changes import UNCHANGED, Change, Op, SeqPosition, Transaction
from opendms.endpoints.dynamodb.position import StreamPosition
from opendms.envelope import ChangeRecord, record_text
from opendms.errors import ConfigError
from opendms.handlers import outbox
from opendms.handlers.outbox import entry_id
from opendms.handlers.process import HandlerProcess
from opendms.handlers.runtime import Cursor, Dispatcher
from opendms.handlers.store import HandlerStore, Row
from opendms.handlersettings import HandlerSpec
from tests.waiting import wait_until

BEHAVIOURS = "tests.handlers_fixtures.behaviours"
MIRROR = "tests.handlers_fixtures.mirror"
RECORD = record_text(
    ChangeRecord("I", "main", "items", "2024-05-01T12:00:00.000000Z", "5", "", 0, {"id": 1})
)
ROW = Row(1, "id1", "main", "items", "2024-05-01T12:00:00.000000Z", RECORD)
STAMP = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
KEY = "id"


def _txns(table: str, ids: range, at: int = 0) -> list[Transaction]:
    """Inserts of ``ids`` into ``table``, each its own transaction at position ``at + id``."""
    return [
        Transaction(
            at + i,
            STAMP,
            SeqPosition(at + i),
            [Change(Op.INSERT, "main", table, ("id", "v"), (i, f"{table}{i}"))],
        )
        for i in ids
    ]


def _ids_of(store: HandlerStore) -> list[tuple[int, str]]:
    """(seq, record id) of every change the outbox holds, read as a dispatcher does."""
    cursor, seq, out = Cursor(store), 0, []
    while found := cursor.after(seq, 3):
        out += [(at, entry_id(entry)) for at, entry in found]
        seq = found[-1][0]
    return out


def _rid(position: int, index: int = 0) -> str:
    return f"{position:020d}-{index:010d}"


def test_a_batch_appended_again_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "CHUNK", 2)  # chunks of two changes: a cursor crosses them
    store = HandlerStore(tmp_path / "state.db", "t")
    assert store.append(_txns("items", range(1, 4))) == 3
    # after a crash: the first three again, and one more
    assert store.append(_txns("items", range(1, 5))) == 1
    other = HandlerStore(tmp_path / "state.db", "other")
    assert other.append(_txns("items", range(1, 3))) == 2  # another task's outbox is its own
    assert _ids_of(store) == [(i, _rid(i)) for i in range(1, 5)]
    assert store.last_seq() == 4 and other.last_seq() == 2
    # a transaction handed off again in part: only its changes after the newest one
    big = Transaction(9, STAMP, SeqPosition(9), [*_txns("items", range(5, 8))[0].changes] * 3)
    assert store.append([replace(big, changes=big.changes[:2])]) == 2
    assert store.append([big]) == 1
    assert _ids_of(store)[4:] == [(5, _rid(9, 0)), (6, _rid(9, 1)), (7, _rid(9, 2))]


def test_changes_that_make_no_record_stay_out(tmp_path: Path) -> None:
    store = HandlerStore(tmp_path / "state.db", "t")
    bad = Change(Op.INSERT, "main", "items", ("id",), (1,), error="column id: bad")
    restated = Change(Op.DDL, "main", "items")  # a relation message: no DDL text
    good = Change(Op.INSERT, "main", "items", ("id", "v"), (UNCHANGED, "x"))
    assert store.append([Transaction(1, STAMP, SeqPosition(1), [bad, restated, good])]) == 1
    (seq, entry), *_ = Cursor(store).after(0, 10)
    assert (seq, entry_id(entry)) == (1, _rid(1, 2))
    assert entry[0].values[0] is UNCHANGED  # the marker survives the pickle


def test_checkpoints_prune_what_every_handler_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "CHUNK", 1)
    store = HandlerStore(tmp_path / "state.db", "t")
    store.append(_txns("items", range(1, 6)))
    store.advance("a", 4, _rid(4), 4)
    store.advance("b", 2, _rid(2), 1)
    store.advance("b", 3, _rid(3), 1)
    assert store.prune(["a", "b"]) == 3
    assert [seq for seq, _ in _ids_of(store)] == [4, 5]
    assert store.checkpoint("b").delivered == 2 and store.checkpoint("b").last_record == _rid(3)
    stamp = "2024-05-01T12:00:00.000000Z"
    assert store.pending(3) == [("main", "items", 2, stamp)]
    store.note_error("a", "ValueError: x")
    assert store.checkpoint("a").last_error == "ValueError: x"
    store.advance("a", 5, _rid(5), 1)
    assert store.checkpoint("a").last_error == ""
    assert store.handlers() == ["a", "b"]


def test_pending_counts_a_chunk_passed_in_part(tmp_path: Path) -> None:
    store = HandlerStore(tmp_path / "state.db", "t")
    store.append(_txns("items", range(1, 4)) + _txns("other", range(1, 3), 10))
    stamp = "2024-05-01T12:00:00.000000Z"
    assert sorted(store.pending(0)) == [("main", "items", 3, stamp), ("main", "other", 2, stamp)]
    assert store.pending(2) == [("main", "items", 1, stamp), ("main", "other", 2, stamp)]
    assert store.pending(5) == []


def test_dead_letters_are_kept_until_forgotten(tmp_path: Path) -> None:
    store = HandlerStore(tmp_path / "state.db", "t")
    rows = [Row(i, f"id{i}", "main", "items", "t", f"r{i}") for i in (3, 1)]
    store.dead_letter("a", rows, "boom", 4)
    store.dead_letter("a", rows[:1], "boom again", 5)
    letters = store.dead_letters("a")
    assert [(d.row.seq, d.error, d.attempts) for d in letters] == [
        (1, "boom", 4),
        (3, "boom again", 5),
    ]
    store.forget("a", [3])
    assert [d.row.seq for d in store.dead_letters("a")] == [1]
    assert store.dead_letter_count("a") == 1 and store.dead_letter_count("b") == 0


def _process(function: str, timeout: float = 10.0) -> HandlerProcess:
    process = HandlerProcess(
        f"{BEHAVIOURS}:{function}", timeout, {"OPENDMS_TASK": "t", "OPENDMS_HANDLER": "h"}
    )
    process.start()
    return process


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("raises", "KeyError: 1 ("),
        ("exits", "the handler process exited with status 3"),
        ("environment", "RuntimeError: t/h"),
    ],
)
def test_function_errors_come_back_as_text(function: str, error: str) -> None:
    process = _process(function)
    try:
        assert error in process.invoke([ROW])
        assert error in process.invoke([ROW])  # again: a new process if it died
    finally:
        process.close()


def test_a_function_that_prints_still_answers() -> None:
    process = _process("chatty")
    try:
        assert process.invoke([ROW, ROW]) == ""
        assert process.started == 1
    finally:
        process.close()


def test_a_function_past_its_timeout_is_killed_and_the_next_call_restarts() -> None:
    process = _process("sleeps", timeout=1.0)
    try:
        began = time.monotonic()
        assert process.invoke([ROW]) == "timed out after 1 s (the handler process was killed)"
        assert time.monotonic() - began < 10
        assert process.proc is None
        process.function = f"{BEHAVIOURS}:chatty"
        assert process.invoke([ROW]) == "" and process.started == 2
    finally:
        process.close()


def test_a_function_that_cannot_be_imported_says_why() -> None:
    with pytest.raises(ConfigError, match=r"cannot import nosuch\.mod:fn: ModuleNotFoundError"):
        HandlerProcess("nosuch.mod:fn", 5.0, {}).start()


def test_a_dispatcher_feeds_its_tables_in_batches_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDLER_DIR", str(tmp_path))
    state = tmp_path / "state.db"
    outbox = HandlerStore(state, "t")
    outbox.append(_txns("items", range(1, 4)) + _txns("other", range(1, 6), 10))
    outbox.append(_txns("items", range(4, 8), 20))
    spec = HandlerSpec.model_validate(
        {"function": f"{MIRROR}:apply", "name": "m", "tables": ["items"], "batch_size": 4}
    )
    process = HandlerProcess(spec.function, 10.0, {})
    process.start()
    dispatcher = Dispatcher(spec, process, HandlerStore(state, "t"), ["m"], _key_of)
    last = outbox.last_seq()
    try:
        dispatcher.start()
        wait_until(lambda: dispatcher.passed == last, 30, "the outbox")
    finally:
        dispatcher.halt.set()
        dispatcher.wake.set()
        dispatcher.join()
        process.close()
    calls = _ids(tmp_path / "out.db", "SELECT ids FROM calls ORDER BY n")
    positions = [[int(i.split("-")[0]) for i in call] for call in calls]
    assert positions == [[1, 2, 3, 24], [25, 26, 27]]  # the other table's records skipped
    assert _ids(tmp_path / "out.db", "SELECT id, v FROM items ORDER BY id") == [
        [f"{i}", f"items{i}"] for i in range(1, 8)
    ]
    point = outbox.checkpoint("m")
    assert point.delivered == 7 and point.seq == last
    assert outbox.chunks_after(0) == []  # pruned: the only handler passed everything


def _key_of(schema: str, table: str) -> tuple[str, ...]:
    return (KEY,)


def _ids(db: Path, sql: str) -> list[list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(sql).fetchall()
    return [r[0].split(",") if len(r) == 1 else [str(v) for v in r] for r in rows]


def test_the_batching_window_waits_for_more_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDLER_DIR", str(tmp_path))
    state = tmp_path / "state.db"
    outbox = HandlerStore(state, "t")
    spec = HandlerSpec.model_validate(
        {"function": f"{MIRROR}:apply", "name": "m", "MaximumBatchingWindowInSeconds": 1.5}
    )
    process = HandlerProcess(spec.function, 10.0, {})
    process.start()
    dispatcher = Dispatcher(spec, process, HandlerStore(state, "t"), ["m"], _key_of)
    try:
        dispatcher.start()
        outbox.append(_txns("items", range(1, 3)))
        dispatcher.wake.set()
        time.sleep(0.5)
        outbox.append(_txns("items", range(3, 6)))
        dispatcher.wake.set()
        last = outbox.last_seq()
        wait_until(lambda: dispatcher.passed == last, 30, "the outbox")
    finally:
        dispatcher.halt.set()
        dispatcher.wake.set()
        dispatcher.join()
        process.close()
    calls = _ids(tmp_path / "out.db", "SELECT ids FROM calls ORDER BY n")
    assert [[int(i.split("-")[0]) for i in call] for call in calls] == [[1, 2, 3, 4, 5]]


def test_positions_that_do_not_sort_are_never_skipped(tmp_path: Path) -> None:
    """DynamoDB Streams positions do not sort as text: a batch handed off again is kept
    again (its handlers see it twice: delivery is at least once)."""
    store = HandlerStore(tmp_path / "state.db", "t")
    end = StreamPosition.parse("2026-12-04T23:40:01.123Z|items/shardId-0001=42")
    change = Change(Op.INSERT, "main", "items", ("id", "v"), (1, "a"))
    batch = [Transaction(1, STAMP, end, [change])]
    assert store.append(batch) == 1
    assert store.append(batch) == 1
    assert [seq for seq, _ in _ids_of(store)] == [1, 2]


def test_a_sqlite_batch_regrouped_after_a_restart_adds_only_what_is_new(tmp_path: Path) -> None:
    """SQLite changes carry their own positions: a restart that reads them grouped
    otherwise hands off only the changes the outbox does not hold."""
    store = HandlerStore(tmp_path / "state.db", "t")
    made = [
        Change(Op.INSERT, "main", "items", ("id", "v"), (i, "x"), origin=i) for i in range(1, 6)
    ]
    assert store.append([Transaction(1, STAMP, SeqPosition(3), made[:3])]) == 3
    assert store.append([Transaction(2, STAMP, SeqPosition(5), made[1:])]) == 2
    assert [rid for _, rid in _ids_of(store)] == [_rid(i) for i in range(1, 6)]
