"""Recoverable errors: a lost connection, a server restart, a full disk are retried.

The DMS settings decide how (``ErrorBehavior``, DMS user guide "Error handling task
settings"): ``RecoverableErrorCount`` attempts (-1: no limit, 0: never retry),
``RecoverableErrorInterval`` seconds between them, doubled after each attempt when
``RecoverableErrorThrottling`` is on, up to ``RecoverableErrorThrottlingMax``; with
``RecoverableErrorStopRetryAfterThrottlingMax`` the retries end once that maximum wait was
reached. Only errors whose type says ``retryable`` are retried (``ConnectError``,
``ResourceError``); authentication, a missing slot or binlog, bad settings are fatal and
fail at once with their reason.

A CDC task retries from its checkpoint in the target, so nothing is lost or applied twice;
a full-load unit (a table or a segment) whose connection drops is loaded again on its own
(see ``FullLoad``), the other units keep what they loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from opendms.config import ErrorBehaviorSection
from opendms.errors import OpenDMSError, StopRequested

log = logging.getLogger("opendms.recover")
T = TypeVar("T")


@dataclass
class Retries:
    """The back-off schedule of one task run (or one full-load unit)."""

    settings: ErrorBehaviorSection
    attempts: int = 0
    wait: float = 0.0

    def next_wait(self) -> float | None:
        """Seconds to wait before the next attempt, or None when retries are over."""
        s = self.settings
        if s.RecoverableErrorCount == 0:
            return None
        if s.RecoverableErrorCount > 0 and self.attempts >= s.RecoverableErrorCount:
            return None
        if not s.RecoverableErrorThrottling:
            wait = float(s.RecoverableErrorInterval)
        else:
            top = float(s.RecoverableErrorThrottlingMax)
            if self.wait >= top and s.RecoverableErrorStopRetryAfterThrottlingMax and top:
                return None
            wait = min(s.RecoverableErrorInterval * 2.0**self.attempts, top or float("inf"))
        self.attempts += 1
        self.wait = wait
        return wait


def retrying(
    what: str,
    run: Callable[[], T],
    retries: Retries,
    stop: threading.Event,
    on_retry: Callable[[OpenDMSError, float], None] | None = None,
    allowed: Callable[[], bool] = lambda: True,
) -> T:
    """``run()``; a retryable opendms error runs it again after the back-off, until the
    retries are over (then the last error is raised) or ``stop`` is set. ``allowed()``
    False makes the error final (an error before the work ever got going)."""
    while True:
        try:
            return run()
        except OpenDMSError as exc:
            if not exc.retryable or stop.is_set() or not allowed():
                raise
            wait = retries.next_wait()
            if wait is None:
                log.error("%s: giving up after %d retries: %s", what, retries.attempts, exc)
                raise
            log.warning(
                "%s: %s; retrying in %.0f s (attempt %d)", what, exc, wait, retries.attempts
            )
            if on_retry is not None:
                on_retry(exc, wait)
            if stop.wait(wait):
                raise StopRequested() from exc
