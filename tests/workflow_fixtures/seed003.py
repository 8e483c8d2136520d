"""Task functions for seed 003's two-state machine, run by ``opendms workflow run``
tests: a first call of ``to_files`` fails (a flaky source), as the test's retry wants."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def to_files(payload: dict[str, Any]) -> str:
    marker = Path(os.environ["WORKFLOW_DIR"]) / "failed-once"
    if not marker.exists():
        marker.write_text("1")
        raise ConnectionError("the source is not reachable yet")
    return f"{payload['company']}-guid"


def to_mysql(guid: str) -> dict[str, Any]:
    return {"loaded": guid, "rows": 3}
