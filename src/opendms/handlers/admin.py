"""Looking at a task's handlers and replaying their dead letters (``opendms handlers``).

The handlers are read from the task as the state store last recorded it (its last run),
or from a task file when one is given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opendms.config import load_task_file
from opendms.errors import ConfigError
from opendms.handlers.delivery import Delivery
from opendms.handlers.process import HandlerProcess
from opendms.handlers.runtime import handler_env
from opendms.handlers.store import Checkpoint, DeadLetter, HandlerStore, Row, age_s
from opendms.handlersettings import HandlerSpec
from opendms.state import StateStore

REPLAY_RETRIES = 3  # retries of a replayed batch when the handler's own are unlimited


@dataclass(frozen=True)
class HandlerStatus:
    """One handler of a task: its checkpoint, what it has still to receive (``pending``
    records, the oldest ``oldest_pending_s`` seconds after its commit) and how many dead
    letters it has."""

    name: str
    function: str
    checkpoint: Checkpoint
    pending: int
    oldest_pending_s: float | None
    dead_letters: int


@dataclass(frozen=True)
class Replayed:
    """What a replay did for one handler: records delivered, records still dead."""

    name: str
    delivered: int
    still_dead: int
    error: str = ""  # the last error of what is still dead


def task_handlers(state: Path, task: str, file: Path | None = None) -> list[HandlerSpec]:
    """The handlers of ``task``: from ``file``, else as its last run recorded them."""
    if file is not None:
        spec = load_task_file(file)
        if spec.name != task:
            raise ConfigError(f"task file {file} defines task {spec.name!r}, not {task!r}")
        return list(spec.handlers)
    if not state.is_file():
        raise ConfigError(f"no task named {task!r}: there is no state store {state}")
    store = StateStore(state)
    try:
        record = store.task(task)
    finally:
        store.close()
    if record is None:
        raise ConfigError(f"no task named {task!r} in {state}")
    body = json.loads(record.spec)
    return [HandlerSpec.model_validate(h) for h in body.get("handlers") or []]


def _chosen(handlers: list[HandlerSpec], task: str, name: str | None) -> list[HandlerSpec]:
    if not handlers:
        raise ConfigError(f"task {task!r} has no handlers")
    if name is None:
        return handlers
    found = [h for h in handlers if h.label == name]
    if not found:
        known = ", ".join(h.label for h in handlers)
        raise ConfigError(f"task {task!r} has no handler {name!r} (it has: {known})")
    return found


def status(state: Path, task: str, file: Path | None = None) -> list[HandlerStatus]:
    """Each handler of ``task``: checkpoint, pending records (lag), dead letters."""
    handlers = _chosen(task_handlers(state, task, file), task, None)
    store = HandlerStore(state, task)
    try:
        return [_status(store, h) for h in handlers]
    finally:
        store.close()


def _status(store: HandlerStore, handler: HandlerSpec) -> HandlerStatus:
    point = store.checkpoint(handler.label)
    tables = [p for p in store.pending(point.seq) if handler.takes(p[0], p[1])]
    oldest = min((p[3] for p in tables), default=None)
    return HandlerStatus(
        handler.label,
        handler.function,
        point,
        sum(p[2] for p in tables),
        age_s(oldest) if oldest is not None else None,
        store.dead_letter_count(handler.label),
    )


def dead_letters(
    state: Path, task: str, name: str | None = None, file: Path | None = None
) -> list[tuple[str, DeadLetter]]:
    """(handler, dead letter) of ``task``'s handlers (or of handler ``name``)."""
    handlers = _chosen(task_handlers(state, task, file), task, name)
    store = HandlerStore(state, task)
    try:
        return [(h.label, d) for h in handlers for d in store.dead_letters(h.label)]
    finally:
        store.close()


def replay(
    state: Path, task: str, name: str | None = None, file: Path | None = None
) -> list[Replayed]:
    """Deliver the dead letters of ``task``'s handlers (or of handler ``name``) again,
    in commit order and batches of each handler's ``BatchSize``, with its retries and
    bisection (no age limit: dead letters are old). Delivered ones leave the store; the
    others stay, with their newest error."""
    handlers = _chosen(task_handlers(state, task, file), task, name)
    store = HandlerStore(state, task)
    try:
        return [_replay(store, task, h) for h in handlers]
    finally:
        store.close()


def _replay(store: HandlerStore, task: str, handler: HandlerSpec) -> Replayed:
    letters = [d.row for d in store.dead_letters(handler.label)]
    if not letters:
        return Replayed(handler.label, 0, 0)
    retries = handler.max_retry_attempts if handler.max_retry_attempts != -1 else REPLAY_RETRIES
    spec = handler.model_copy(update={"max_record_age_s": -1, "max_retry_attempts": retries})
    process = HandlerProcess(handler.function, handler.timeout_s, handler_env(task, handler.label))
    failed: dict[int, str] = {}

    def dead(rows: list[Row], error: str, attempts: int) -> None:
        store.dead_letter(handler.label, rows, error, attempts)
        failed.update((r.seq, error) for r in rows)

    try:
        process.start()
        delivery = Delivery(spec, process, dead, threading.Event())
        for batch in _batches(letters, handler.batch_size):
            delivery.deliver(batch)
            store.forget(handler.label, [r.seq for r in batch if r.seq not in failed])
    finally:
        process.close()
    last = next(reversed(failed.values()), "")
    return Replayed(handler.label, len(letters) - len(failed), len(failed), last)


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
