"""Task functions for the durable-execution test: each call is logged to
``$WORKFLOW_DIR/calls.log``; item 2 waits for ``$WORKFLOW_DIR/go`` (the test kills the
execution while it waits, then resumes it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _log(line: str) -> Path:
    folder = Path(os.environ["WORKFLOW_DIR"])
    with (folder / "calls.log").open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    return folder


def first(payload: dict[str, Any]) -> list[int]:
    _log("first")
    return list(range(int(payload["items"])))


def item(number: int) -> int:
    folder = _log(f"start {number}")
    while number == 2 and not (folder / "go").exists():
        time.sleep(0.05)
    _log(f"done {number}")
    return number * number


def last(squares: list[int]) -> dict[str, Any]:
    _log("last")
    return {"sum": sum(squares)}
