"""``opendms serve --function``: Python functions as HTTP calls (query parameters and a
JSON body as the event, the result as JSON, errors as Lambda names them), behind the
server's token unless public."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opendms.errors import ConfigError
from opendms.server.app import create_app
from opendms.server.auth import load_or_create_token
from tests.server.conftest import running

FUNCTIONS = {
    "echo": "tests.server.functions_fixture:echo",
    "boom": "tests.server.functions_fixture:boom",
}


def test_functions_are_called_with_the_event(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running(create_app(state, functions=FUNCTIONS)) as url:
        token = load_or_create_token(state)[0]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            got = client.get("/functions/echo", params={"rider_id": "71463", "n": "4"})
            assert got.status_code == 200
            assert got.json() == {"got": {"rider_id": "71463", "n": "4"}, "n": 5}
            posted = client.post("/functions/echo?a=1", json={"b": [1, 2]})
            assert posted.json()["got"] == {"a": "1", "b": [1, 2]}
            failed = client.get("/functions/boom", params={"x": "1"})
            assert failed.status_code == 500
            assert failed.json() == {"errorType": "ValueError", "errorMessage": "bad event ['x']"}
            assert client.get("/functions/nope").status_code == 404
            assert client.post("/functions/echo", content=b"[1]").status_code == 400
        assert httpx.get(f"{url}/functions/echo").status_code == 401  # no token
    with running(create_app(tmp_path / "open", functions=FUNCTIONS, public_functions=True)) as url:
        assert httpx.get(f"{url}/functions/echo", params={"n": "1"}).json()["n"] == 2


def test_a_function_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--function x=nosuch\.module:fn: cannot import"):
        create_app(tmp_path / "state", functions={"x": "nosuch.module:fn"})
    opendms = str(Path(sys.executable).parent / "opendms")
    args = [opendms, "serve", "--state", str(tmp_path / "s"), "--function", "x=nofunction"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "expected NAME=module:function" in done.stderr
    assert "Traceback" not in done.stderr
