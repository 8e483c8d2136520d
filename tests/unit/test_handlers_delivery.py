"""Delivery to a handler without processes: retries, bisection, dead letters, record age,
a stop between retries; and the outbox's chunks of a batch of transactions, made into
records on the handler process's side."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from opendms.changes import Change, Op, SeqPosition, Transaction
from opendms.envelope import commit_text, record_id, record_text, records_of
from opendms.handlers import delivery as delivery_module
from opendms.handlers.delivery import Deliverable, Delivery, HaltedError
from opendms.handlers.outbox import Item, Records, chunks, entries
from opendms.handlers.store import Row
from opendms.handlersettings import HandlerSpec


@dataclass
class Function:
    """Fails every call holding a record of ``poison`` (by record text), and the first
    ``fail_first`` calls."""

    poison: set[str] = field(default_factory=set)
    fail_first: int = 0
    calls: list[list[str]] = field(default_factory=list)

    def invoke(self, rows: Sequence[Deliverable]) -> str:
        records = [r.wire()[1] for r in rows]  # a Row's record text
        self.calls.append(records)
        if len(self.calls) <= self.fail_first:
            return "OSError: for a while"
        bad = self.poison & set(records)
        return f"ValueError: {sorted(bad)}" if bad else ""


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "MAX_BACKOFF_S", 0.0)


def _rows(n: int, commit_time: str | None = None) -> list[Row]:
    """``n`` rows committed at ``commit_time`` (default: now, when called: a module-level
    time would age past a test's MaximumRecordAgeInSeconds in a long suite)."""
    when = commit_time or commit_text(datetime.now(UTC))
    return [Row(i, f"id{i}", "main", "items", when, f"r{i}") for i in range(1, n + 1)]


def _deliver(rows: list[Row], function: Function, **settings: object) -> tuple[int, list[Row]]:
    spec = HandlerSpec.model_validate({"function": "a:b", **settings})
    dead: list[Row] = []
    got: Delivery[Row] = Delivery(spec, function, lambda r, e, n: dead.extend(r), threading.Event())
    return got.deliver(rows), dead


def test_a_batch_that_succeeds_is_one_call() -> None:
    function = Function()
    assert _deliver(_rows(5), function) == (5, [])
    assert function.calls == [["r1", "r2", "r3", "r4", "r5"]]


def test_without_bisection_the_whole_batch_is_retried_then_dead() -> None:
    function = Function({"r3"})
    delivered, dead = _deliver(_rows(4), function, MaximumRetryAttempts=2)
    assert delivered == 0 and [r.seq for r in dead] == [1, 2, 3, 4]
    assert function.calls == [["r1", "r2", "r3", "r4"]] * 3


def test_bisection_isolates_the_poison_record() -> None:
    function = Function({"r6"})
    rows = _rows(8)
    delivered, dead = _deliver(
        rows, function, MaximumRetryAttempts=1, bisect_batch_on_function_error=True
    )
    assert delivered == 7 and [r.seq for r in dead] == [6]
    assert function.calls == [
        [f"r{i}" for i in range(1, 9)],
        ["r1", "r2", "r3", "r4"],
        ["r5", "r6", "r7", "r8"],
        ["r5", "r6"],
        ["r5"],
        ["r6"],
        ["r6"],  # its one retry
        ["r7", "r8"],
    ]


def test_a_retry_that_succeeds_delivers() -> None:
    function = Function(fail_first=2)
    assert _deliver(_rows(2), function, MaximumRetryAttempts=2) == (2, [])
    assert function.calls == [["r1", "r2"]] * 3


def test_records_older_than_the_age_limit_are_dead_without_a_call() -> None:
    old = commit_text(datetime.now(UTC) - timedelta(seconds=120))
    function = Function()
    delivered, dead = _deliver(_rows(2, old) + _rows(1), function, MaximumRecordAgeInSeconds=60)
    assert delivered == 1 and [r.seq for r in dead] == [1, 2]
    assert function.calls == [["r1"]]  # the young one (seq 1 of the second list)


def test_a_stop_between_retries_leaves_the_batch_unfinished() -> None:
    spec = HandlerSpec.model_validate({"function": "a:b", "MaximumRetryAttempts": -1})
    halt = threading.Event()
    halt.set()
    dead: list[Row] = []
    delivery: Delivery[Row] = Delivery(spec, Function({"r1"}), lambda r, e, n: dead.extend(r), halt)
    with pytest.raises(HaltedError):
        delivery.deliver(_rows(1))
    assert dead == []


def _txn(end: int, *changes: Change) -> Transaction:
    return Transaction(7, datetime(2024, 5, 1, 12, tzinfo=UTC), SeqPosition(end), list(changes))


def _items(batch: list[Transaction], key: tuple[str, ...] = ("id",)) -> list[Item]:
    """The outbox items of ``batch``, as a dispatcher reads them."""
    out: list[Item] = []
    for chunk in chunks(batch, None):
        first, body = len(out) + 1, chunk.body()
        out += [Item(first + k, first, body, e, key) for k, e in enumerate(entries(body))]
    return out


def test_outbox_items_make_the_envelopes_and_their_ids() -> None:
    insert = Change(Op.INSERT, "main", "items", ("id", "v"), (1, "a"))
    update = Change(Op.UPDATE, "main", "items", ("id", "v"), (1, "b"), ("id",), (1,))
    batch = [
        _txn(17, insert, update),
        _txn(18, Change(Op.DELETE, "main", "items", (), (), ("id",), (1,))),
    ]
    items = _items(batch)
    records = [r for txn in batch for r in records_of(txn, lambda schema, table: ("id",))]
    assert [i.record_id for i in items] == [record_id(r) for r in records]
    assert [i.text() for i in items] == [record_text(r) for r in records]  # dead letters
    side = Records()  # the handler process's side
    wires = [i.wire() for i in items]
    assert side.missing(wires) == [1]
    side.add({1: items[0].body})
    assert [side.record(w) for w in wires] == records
    assert records[0].key == {"id": 1}  # an insert's key from the table's key columns
    assert [r.op for r in records] == ["I", "U", "D"]
    assert side.record(("j", record_text(records[2]))) == records[2]  # a replayed one


def test_a_change_the_source_could_not_decode_makes_no_record_and_keeps_the_sequences() -> None:
    bad = Change(Op.INSERT, "main", "items", ("id", "v"), (2, None), error="column v: bad")
    good = Change(Op.INSERT, "main", "items", ("id", "v"), (3, "c"))
    items = _items([_txn(20, bad, good)])
    assert [(i.record_id, json.loads(i.text())["sequence"]) for i in items] == [
        ("00000000000000000020-0000000001", 1)
    ]
