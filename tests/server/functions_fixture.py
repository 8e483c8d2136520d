"""Functions the server serves in tests/server/test_functions.py."""

from __future__ import annotations

from typing import Any


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"got": event, "n": int(event.get("n", 0)) + 1}


def boom(event: dict[str, Any]) -> None:
    raise ValueError(f"bad event {sorted(event)}")
