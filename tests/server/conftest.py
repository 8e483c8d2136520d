"""A real ``opendms serve`` (uvicorn on a free port, in a thread) for boto3 and httpx to
call; ``rest`` is an httpx client of its REST API with the server's token."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from opendms.server.app import create_app
from opendms.server.auth import load_or_create_token
from tests.waiting import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def running(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; its URL. Stopped on exit."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 10, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The URL of a server over ``tmp_path/state``; stopped at the end, with the tasks
    the test left running."""
    with running(create_app(tmp_path / "state")) as url:
        yield url
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
    return boto3.session.Session().client(
        "dms",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


@pytest.fixture
def token(server: str, tmp_path: Path) -> str:
    """The bearer token of ``server``."""
    return load_or_create_token(tmp_path / "state")[0]


@pytest.fixture
def rest(server: str, token: str) -> Iterator[httpx.Client]:
    """An httpx client of ``server``'s REST API (``/api/v1``), with its token."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{server}/api/v1", headers=headers, timeout=60) as client:
        yield client
