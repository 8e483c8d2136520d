"""The handlers' tables in a real state file, and a real handler process: crashes,
timeouts, prints and exceptions of the function come back as function errors."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from opendms.envelope import ChangeRecord, record_id, record_text
from opendms.errors import ConfigError
from opendms.handlers.process import HandlerProcess
from opendms.handlers.runtime import Dispatcher
from opendms.handlers.store import HandlerStore, Row
from opendms.handlersettings import HandlerSpec
from tests.waiting import wait_until

BEHAVIOURS = "tests.handlers_fixtures.behaviours"
MIRROR = "tests.handlers_fixtures.mirror"
RECORD = record_text(
    ChangeRecord("I", "main", "items", "2024-05-01T12:00:00.000000Z", "5", "", 0, {"id": 1})
)


def _outbox(n: int, start: int = 1) -> list[tuple[str, str, str, str, str]]:
    return [(f"id{i:03d}", "main", "items", "t", f"r{i}") for i in range(start, start + n)]


def test_a_batch_appended_again_adds_nothing(tmp_path: Path) -> None:
    store = HandlerStore(tmp_path / "state.db", "t")
    store.append(_outbox(3))
    store.append(_outbox(4))  # after a crash: the first three again, and one more
    other = HandlerStore(tmp_path / "state.db", "other")
    other.append(_outbox(2))  # another task's outbox is its own
    rows = store.after(0, 10)
    assert [(r.record_id, r.record) for r in rows] == [(f"id00{i}", f"r{i}") for i in range(1, 5)]
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs) and seqs[:3] == [1, 2, 3]  # ignored ids may leave gaps
    assert [r.record_id for r in store.after(2, 1)] == ["id003"]
    assert store.last_seq() == seqs[-1] and other.last_seq() > seqs[-1]


def test_checkpoints_prune_what_every_handler_passed(tmp_path: Path) -> None:
    store = HandlerStore(tmp_path / "state.db", "t")
    store.append(_outbox(5))
    store.advance("a", 4, "id004", 4)
    store.advance("b", 2, "id002", 1)
    store.advance("b", 3, "id003", 1)
    assert store.prune(["a", "b"]) == 3
    assert [r.seq for r in store.after(0, 10)] == [4, 5]
    assert store.checkpoint("b").delivered == 2 and store.checkpoint("b").last_record == "id003"
    assert store.pending(3) == [("main", "items", 2, "t")]
    store.note_error("a", "ValueError: x")
    assert store.checkpoint("a").last_error == "ValueError: x"
    store.advance("a", 5, "id005", 1)
    assert store.checkpoint("a").last_error == ""
    assert store.handlers() == ["a", "b"]


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
        assert error in process.invoke([RECORD])
        assert error in process.invoke([RECORD])  # again: a new process if it died
    finally:
        process.close()


def test_a_function_that_prints_still_answers() -> None:
    process = _process("chatty")
    try:
        assert process.invoke([RECORD, RECORD]) == ""
        assert process.started == 1
    finally:
        process.close()


def test_a_function_past_its_timeout_is_killed_and_the_next_call_restarts() -> None:
    process = _process("sleeps", timeout=1.0)
    try:
        began = time.monotonic()
        assert process.invoke([RECORD]) == "timed out after 1 s (the handler process was killed)"
        assert time.monotonic() - began < 10
        assert process.proc is None
        process.function = f"{BEHAVIOURS}:chatty"
        assert process.invoke([RECORD]) == "" and process.started == 2
    finally:
        process.close()


def test_a_function_that_cannot_be_imported_says_why() -> None:
    with pytest.raises(ConfigError, match=r"cannot import nosuch\.mod:fn: ModuleNotFoundError"):
        HandlerProcess("nosuch.mod:fn", 5.0, {}).start()


def _records(table: str, ids: range, at: int = 0) -> list[tuple[str, str, str, str, str]]:
    """Inserts of ``ids`` into ``table``, each its own transaction at position ``at + id``."""
    out = []
    for i in ids:
        record = ChangeRecord(
            "I",
            "main",
            table,
            "2024-05-01T12:00:00.000000Z",
            str(at + i),
            "",
            0,
            {"id": i},
            None,
            {"id": i, "v": f"{table}{i}"},
        )
        out.append((record_id(record), "main", table, record.commit_time, record_text(record)))
    return out


def test_a_dispatcher_feeds_its_tables_in_batches_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDLER_DIR", str(tmp_path))
    state = tmp_path / "state.db"
    outbox = HandlerStore(state, "t")
    outbox.append(_records("items", range(1, 4)) + _records("other", range(1, 6), 100))
    outbox.append(_records("items", range(4, 8)))
    spec = HandlerSpec.model_validate(
        {"function": f"{MIRROR}:apply", "name": "m", "tables": ["items"], "batch_size": 4}
    )
    process = HandlerProcess(spec.function, 10.0, {})
    process.start()
    dispatcher = Dispatcher(spec, process, HandlerStore(state, "t"), ["m"])
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
    assert positions == [[1, 2, 3, 4], [5, 6, 7]]  # the other table's records skipped
    assert _ids(tmp_path / "out.db", "SELECT id, v FROM items ORDER BY id") == [
        [f"{i}", f"items{i}"] for i in range(1, 8)
    ]
    point = outbox.checkpoint("m")
    assert point.delivered == 7 and point.seq == last
    assert outbox.after(0, 100) == []  # pruned: the only handler passed everything


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
    dispatcher = Dispatcher(spec, process, HandlerStore(state, "t"), ["m"])
    try:
        dispatcher.start()
        outbox.append(_records("items", range(1, 3)))
        dispatcher.wake.set()
        time.sleep(0.5)
        outbox.append(_records("items", range(3, 6)))
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
