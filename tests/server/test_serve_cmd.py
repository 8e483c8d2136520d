"""``opendms serve``: the command starts the server; a non-loopback host needs --insecure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.cli.serve_cmd import is_loopback
from tests.server.conftest import _free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--state", str(tmp_path)])
    assert result.exit_code == 2
    assert "--insecure" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_answers(tmp_path: Path) -> None:
    port = _free_port()
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "opendms.cli.main",
        "serve",
        "--port",
        str(port),
        "--state",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_until(
            lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), 30, "opendms serve to answer"
        )
        assert (tmp_path / "server.db").is_file()
    finally:
        proc.terminate()
        proc.wait(10)
