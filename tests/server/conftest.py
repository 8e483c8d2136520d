"""A real ``opendms serve`` (uvicorn on a free port, in a thread) for boto3 to call."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn

from opendms.server.app import create_app
from tests.waiting import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The URL of a server over ``tmp_path/state``; stopped at the end."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(tmp_path / "state"), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 10, "the server to start")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    stop_tasks(tmp_path / "state" / "state.db")


def stop_tasks(state: Path) -> None:
    """Stop the tasks a test left running (task processes outlive the server)."""
    if not state.exists():
        return
    from opendms.service import TaskService
    from opendms.state import TaskStatus

    service = TaskService(state)
    try:
        for info in service.statuses(backlog=False):
            if info.record.status in (TaskStatus.STARTING, TaskStatus.RUNNING):
                try:
                    service.stop(info.record.name)
                except Exception as exc:  # teardown: report, go on with the others
                    print(f"warning: could not stop task {info.record.name}: {exc}")
    finally:
        service.close()


@pytest.fixture
def dms(server: str) -> Any:
    """An unmodified boto3 DMS client of ``server``."""
    return boto3.client(
        "dms",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
