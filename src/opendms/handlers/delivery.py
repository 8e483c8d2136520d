"""Delivering records to one handler: retries with back-off, bisecting a failing batch,
dead letters.

A batch the function fails on (an exception, its process dying, the timeout) is tried
again after 0.1 s, 0.2 s, 0.4 s ... (at most 5 s) up to ``MaximumRetryAttempts`` more
times (-1: until it succeeds). With ``BisectBatchOnFunctionError`` a failing batch of
more than one record is split in halves at once, each delivered on its own (a split does
not count as a retry), so a record that keeps failing ends alone. What still fails after
the retries, and records older than ``MaximumRecordAgeInSeconds``, become dead letters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from opendms.handlers.outbox import Wire
from opendms.handlers.store import age_s
from opendms.handlersettings import HandlerSpec

log = logging.getLogger("opendms.handlers")
MAX_BACKOFF_S = 5.0


class Deliverable(Protocol):
    """A record to deliver: an outbox item, or a dead letter's row (a replay)."""

    @property
    def seq(self) -> int: ...
    @property
    def record_id(self) -> str: ...
    @property
    def commit_time(self) -> str: ...
    @property
    def chunk(self) -> tuple[int, bytes] | None:
        """(first seq, body) of the outbox chunk the record is in (None: a dead letter)."""
        ...

    def wire(self) -> Wire: ...


R = TypeVar("R", bound=Deliverable)
DeadLetters = Callable[[list[R], str, int], None]
"""Keeps (records, last error, attempts) as dead letters."""


class Invoker(Protocol):
    """Calls the function (:class:`opendms.handlers.process.HandlerProcess`)."""

    def invoke(self, records: Sequence[Deliverable]) -> str:
        """ "" when the function took ``records``, else why not."""
        ...


class HaltedError(Exception):
    """The task stops while a batch waits to be retried: it is not finished."""


class Delivery(Generic[R]):
    """Delivers batches to one handler's process by its settings."""

    def __init__(
        self,
        spec: HandlerSpec,
        process: Invoker,
        dead: DeadLetters[R],
        halt: threading.Event,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.spec, self.process, self.dead, self.halt = spec, process, dead, halt
        self.on_error = on_error
        self.invocations = 0  # calls of the function (tests and the bench read it)

    def deliver(self, rows: list[R]) -> int:
        """Deliver ``rows`` (in order): how many the function took; the rest are dead
        letters. HaltedError when the task stops before a retry."""
        rows = self._expire(rows)
        attempts = 0
        while rows:
            error = self._invoke(rows)
            if not error:
                return len(rows)
            attempts += 1
            if self.spec.bisect_batch_on_function_error and len(rows) > 1:
                half = len(rows) // 2
                return self.deliver(rows[:half]) + self.deliver(rows[half:])
            retries = self.spec.max_retry_attempts
            if retries != -1 and attempts > retries:
                self._dead(rows, error, attempts)
                return 0
            self._back_off(attempts)
            rows = self._expire(rows)
        return 0

    def _invoke(self, rows: list[R]) -> str:
        self.invocations += 1
        error = self.process.invoke(rows)
        if error:
            log.warning(
                "handler %s failed on %d record(s) from %s: %s",
                self.spec.label,
                len(rows),
                rows[0].record_id,
                error,
            )
            if self.on_error is not None:
                self.on_error(error)
        return error

    def _dead(self, rows: list[R], error: str, attempts: int) -> None:
        log.warning(
            "handler %s: %d record(s) to the dead-letter store after %d attempt(s): %s",
            self.spec.label,
            len(rows),
            attempts,
            error,
        )
        self.dead(rows, error, attempts)

    def _expire(self, rows: list[R]) -> list[R]:
        """The rows young enough to deliver; older ones become dead letters."""
        limit = self.spec.max_record_age_s
        if limit == -1:
            return rows
        young: list[R] = []
        old: list[R] = []
        for row in rows:
            (old if age_s(row.commit_time) > limit else young).append(row)
        if old:
            self._dead(old, f"older than MaximumRecordAgeInSeconds ({limit} s)", 0)
        return young

    def _back_off(self, attempts: int) -> None:
        wait = min(0.1 * 2 ** (attempts - 1), MAX_BACKOFF_S)
        if self.halt.wait(wait):
            raise HaltedError
