"""Handler functions that misbehave in one way each (the process tests call them)."""

from __future__ import annotations

import os
import time

from opendms.envelope import ChangeRecord


def chatty(records: list[ChangeRecord]) -> None:
    """Prints to stdout (which must not reach the task's reading of answers)."""
    print("hello from the handler", [r.key for r in records])


def exits(records: list[ChangeRecord]) -> None:
    os._exit(3)


def sleeps(records: list[ChangeRecord]) -> None:
    time.sleep(60)


def raises(records: list[ChangeRecord]) -> None:
    raise KeyError(records[0].key["id"])


def environment(records: list[ChangeRecord]) -> None:
    """Fails with the task and handler it was told it serves."""
    raise RuntimeError(f"{os.environ['OPENDMS_TASK']}/{os.environ['OPENDMS_HANDLER']}")
