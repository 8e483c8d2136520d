"""Waiting on an observable event, never on a fixed sleep.

A test that needs something to have happened (a task phase in the state store, a row on
the target, a slot position, a process state) polls for it with :func:`wait_until`. The
deadline fails the test: a wait that runs out raises ``AssertionError`` naming what was
awaited, so a slow or broken run never carries on as if the event had happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``AssertionError("timed out after {timeout}s waiting for {what}")`` once
    ``timeout`` seconds have passed; the last value seen is added to the message.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} (last saw {last!r})"
            )
        time.sleep(interval)  # polling interval only: the deadline above decides
