"""The REST API at /api/v1 on a real server: CRUD and a SQLite -> file lake full load run
to completion, every error status with its body shape, a stop that never holds up the
server, and passwords that no response shows."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from opendms.errors import OpenDMSError
from opendms.server.resources import SCHEMES, SETTINGS_KEYS
from opendms.server.rest_models import EngineName, SettingsKey
from opendms.service import TaskService
from tests.oracles.lake import read_lake
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

RULES = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "%", "table-name": "%"},
            "rule-action": "include",
        }
    ]
}


def _source(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])


def _endpoints(rest: httpx.Client, tmp_path: Path) -> None:
    src = {
        "identifier": "src",
        "endpoint_type": "source",
        "engine_name": "sqlite",
        "database_name": str(tmp_path / "src.db"),
    }
    lake = {
        "identifier": "lake",
        "endpoint_type": "target",
        "engine_name": "file",
        "database_name": str(tmp_path / "lake"),
        "extra_connection_attributes": "DataFormat=parquet;CdcMaxBatchInterval=1",
    }
    for body in (src, lake):
        r = rest.post("/endpoints", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["identifier"] == body["identifier"]


def _task(rest: httpx.Client, name: str, mtype: str = "full-load", **extra: Any) -> dict[str, Any]:
    body = {
        "identifier": name,
        "source": "src",
        "target": "lake",
        "migration_type": mtype,
        "table_mappings": RULES,
        **extra,
    }
    r = rest.post("/tasks", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _status(rest: httpx.Client, name: str) -> str:
    status: str = rest.get(f"/tasks/{name}").json()["status"]
    return status


def _error(r: httpx.Response, status: int, code: str, path: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "path"}
    assert body["error"]["code"] == code
    assert body["error"]["path"] == path
    message: str = body["error"]["message"]
    assert message
    return message


def test_models_know_the_servers_engines() -> None:
    assert set(get_args(EngineName)) == set(SCHEMES)
    assert set(get_args(SettingsKey)) == set(SETTINGS_KEYS)


def test_crud_and_a_full_load_to_the_lake(rest: httpx.Client, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 30)
    _endpoints(rest, tmp_path)
    listed = rest.get("/endpoints").json()
    assert [(e["identifier"], e["endpoint_type"], e["engine_name"]) for e in listed] == [
        ("src", "source", "sqlite"),
        ("lake", "target", "file"),
    ]
    tested = rest.post("/endpoints/src/test").json()
    assert tested == {"endpoint": "src", "status": "successful", "message": None}
    assert rest.get("/endpoints/src").json()["connection"]["status"] == "successful"
    patched = rest.patch("/endpoints/lake", json={"username": "nobody"}).json()
    assert patched["username"] == "nobody" and patched["database_name"] == str(tmp_path / "lake")

    made = _task(rest, "load", task_settings={"TargetMetadata": {"BatchApplyEnabled": False}})
    assert (made["status"], made["source"], made["target"]) == ("ready", "src", "lake")
    assert made["table_mappings"] == RULES
    assert made["task_settings"] == {"TargetMetadata": {"BatchApplyEnabled": False}}
    assert [t["identifier"] for t in rest.get("/tasks").json()] == ["load"]
    started = rest.post("/tasks/load/start")
    assert started.status_code == 200 and started.json()["started_at"] is not None
    wait_until(lambda: _status(rest, "load") == "stopped", 90, "the full load to finish")
    done = rest.get("/tasks/load").json()
    assert done["stop_reason"] == "FULL_LOAD_ONLY_FINISHED"
    assert (done["progress"]["percent"], done["progress"]["tables_loaded"]) == (100, 1)
    tables = rest.get("/tasks/load/tables").json()
    assert [(t["table_name"], t["state"], t["full_load_rows"]) for t in tables] == [
        ("items", "Table completed", 30)
    ]
    assert rest.get("/tasks/load/errors").json() == []
    lake = read_lake(tmp_path / "lake", "DataFormat=parquet", keys=["id"]).tables
    rows = next(t for name, t in lake.items() if name.endswith(".items")).rows
    assert sorted((r["id"], r["name"]) for r in rows) == [(i, f"n{i}") for i in range(30)]

    changed = rest.patch("/tasks/load", json={"migration_type": "full-load-and-cdc"})
    assert changed.status_code == 200 and changed.json()["migration_type"] == "full-load-and-cdc"
    assert rest.delete("/tasks/load").json() == {"identifier": "load", "deleted": True}
    _error(rest.get("/tasks/load"), 404, "not_found")
    for name in ("src", "lake"):
        assert rest.delete(f"/endpoints/{name}").json() == {"identifier": name, "deleted": True}
    assert rest.get("/endpoints").json() == []


def test_error_statuses(rest: httpx.Client, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 3)
    _endpoints(rest, tmp_path)
    bad_rule = {"rules": [{**RULES["rules"][0], "rule-action": "inclde"}]}
    r = rest.post(
        "/tasks",
        json={"identifier": "t", "source": "src", "target": "lake", "table_mappings": bad_rule},
    )
    assert "inclde" in _error(r, 400, "bad_request", "$.table_mappings.rules[0].rule-action")
    r = rest.post(
        "/tasks",
        json={
            "identifier": "t",
            "source": "src",
            "target": "lake",
            "table_mappings": RULES,
            "task_settings": {"Logging": {"Nope": 1}},
        },
    )
    _error(r, 400, "bad_request", "$.task_settings.Logging.Nope")
    r = rest.post(
        "/tasks",
        json={"identifier": "t", "source": "lake", "target": "lake", "table_mappings": RULES},
    )
    assert "target endpoint" in _error(r, 400, "bad_request", "$.source")
    r = rest.post("/endpoints", json={"identifier": "x", "endpoint_type": "source"})
    _error(r, 422, "validation_error", "$.engine_name")
    r = rest.post("/endpoints", json={"identifier": "x", "endpoint_type": "sideways"})
    _error(r, 422, "validation_error", "$.endpoint_type")
    r = rest.post(
        "/endpoints",
        json={"identifier": "x", "endpoint_type": "source", "engine_name": "sqlite", "dbname": 1},
    )
    _error(r, 422, "validation_error", "$.dbname")
    r = rest.post(
        "/endpoints",
        json={"identifier": "x", "endpoint_type": "source", "engine_name": "sqlite"},
    )
    assert "absolute path" in _error(r, 400, "bad_request")
    r = rest.post("/endpoints", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    _error(rest.get("/endpoints/nope"), 404, "not_found")
    _error(rest.post("/tasks/nope/start"), 404, "not_found")
    _error(rest.get("/nothing-here"), 404, "not_found")
    _error(rest.put("/tasks"), 405, "method_not_allowed")
    dup = {"identifier": "src", "endpoint_type": "source", "engine_name": "sqlite"}
    assert "already exists" in _error(rest.post("/endpoints", json=dup), 409, "conflict")
    _task(rest, "t")
    _error(rest.post("/tasks/t/stop"), 409, "conflict")  # not running
    assert "used by" in _error(rest.delete("/endpoints/src"), 409, "conflict")
    big = {"identifier": "x" * 10, "padding": "y" * (2 * 1024 * 1024)}
    _error(rest.post("/endpoints", json=big), 413, "body_too_large")
    assert rest.get("/tasks/t").json()["status"] == "ready"  # the next request is served


def _streaming(rest: httpx.Client, name: str) -> bool:
    task = rest.get(f"/tasks/{name}").json()
    return task["status"] == "running" and task["cdc"]["source_latency_s"] is not None


def _task_pid(tmp_path: Path, name: str) -> int:
    service = TaskService(tmp_path / "state" / "state.db")
    try:
        pid = service.record(name).pid
    finally:
        service.close()
    assert pid
    return pid


@pytest.fixture
def stopped_at_end(tmp_path: Path) -> Iterator[None]:
    """Whatever task process a test leaves running is stopped."""
    yield
    service = TaskService(tmp_path / "state" / "state.db")
    try:
        for info in service.statuses(backlog=False):
            if service.record(info.record.name).pid:
                with contextlib.suppress(OpenDMSError):
                    service.stop(info.record.name, timeout=30)
    finally:
        service.close()


@pytest.mark.usefixtures("stopped_at_end")
def test_start_twice_and_a_stop_that_does_not_block(rest: httpx.Client, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 5)
    _endpoints(rest, tmp_path)
    _task(rest, "cdc", "full-load-and-cdc")
    assert rest.post("/tasks/cdc/start").status_code == 200
    wait_until(lambda: _streaming(rest, "cdc"), 60, "the task to stream changes")
    for action in ("start", "resume", "reload"):
        assert "running" in _error(rest.post(f"/tasks/cdc/{action}"), 409, "conflict")
    _error(rest.delete("/tasks/cdc"), 409, "conflict")
    pid = _task_pid(tmp_path, "cdc")
    os.kill(pid, signal.SIGSTOP)  # a task that takes its time to stop
    try:
        began = time.monotonic()
        stopping = rest.post("/tasks/cdc/stop")
        assert stopping.status_code == 200 and stopping.json()["status"] == "stopping"
        assert [t["status"] for t in rest.get("/tasks").json()] == ["stopping"]
        assert rest.get("/endpoints/src").status_code == 200
        assert time.monotonic() - began < 5  # nothing waited for the frozen process
        assert "stopping" in _error(rest.post("/tasks/cdc/stop"), 409, "conflict")
        assert "stopping" in _error(rest.post("/tasks/cdc/resume"), 409, "conflict")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: _status(rest, "cdc") == "stopped", 60, "the task to stop")
    done = rest.get("/tasks/cdc").json()
    assert done["stopped_at"] is not None and done["stop_reason"] == "STOPPED_BY_USER"
    assert rest.post("/tasks/cdc/resume").status_code == 200  # and it goes on from there
    wait_until(lambda: _status(rest, "cdc") == "running", 60, "the resumed task to run")
    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.execute("INSERT INTO items VALUES (1000, 'after the resume')")
    wait_until(lambda: _inserts(rest, "cdc") == 1, 60, "the change after the resume")


def _inserts(rest: httpx.Client, task: str) -> int:
    return sum(int(t["inserts"]) for t in rest.get(f"/tasks/{task}/tables").json())


def test_passwords_never_in_responses(
    rest: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, from_env = "s3cr3t-Pa55", "env-S3cret-9"
    monkeypatch.setenv("OPENDMS_TEST_PG_PASSWORD", from_env)
    texts = []
    for ident, password in (("pg", secret), ("pgenv", "env:OPENDMS_TEST_PG_PASSWORD")):
        r = rest.post(
            "/endpoints",
            json={
                "identifier": ident,
                "endpoint_type": "source",
                "engine_name": "postgres",
                "server_name": "127.0.0.1",
                "port": 1,
                "database_name": "db",
                "username": "u",
                "password": password,
            },
        )
        assert r.status_code == 201
        texts.append(r.text)
        tested = rest.post(f"/endpoints/{ident}/test")
        assert tested.json()["status"] == "failed" and tested.json()["message"]
        texts.append(tested.text)
    texts.append(rest.patch("/endpoints/pg", json={"password": secret + "2"}).text)
    listed = rest.get("/endpoints")
    texts.append(listed.text)
    assert [(e["password_set"], e["password_env"]) for e in listed.json()] == [
        (True, None),
        (True, "OPENDMS_TEST_PG_PASSWORD"),
    ]
    assert all("password" not in e for e in listed.json())
    for text in texts:
        assert secret not in text and from_env not in text
    raw = (tmp_path / "state" / "server.db").read_bytes()
    assert secret.encode() not in raw and b"fernet:" in raw


def test_authentication(server: str, token: str, tmp_path: Path) -> None:
    api = f"{server}/api/v1"
    _error(httpx.get(f"{api}/tasks"), 401, "unauthorized")
    wrong = httpx.get(f"{api}/tasks", headers={"Authorization": "Bearer nope"})
    _error(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{api}/tasks", headers={"Authorization": f"Bearer {token}"}).json() == []
    doc = httpx.get(f"{api}/openapi.json")
    assert doc.status_code == 200 and "/tasks/{identifier}/start" in doc.json()["paths"]
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api}/docs").status_code == 404  # no page that needs a CDN


def test_console_cookie_needs_csrf_for_changes(server: str, tmp_path: Path) -> None:
    from opendms.server.auth import SESSION_COOKIE, csrf_token, load_or_create_key, make_session

    key = load_or_create_key(tmp_path / "state")
    session = make_session(key)
    body = {
        "identifier": "lake",
        "endpoint_type": "target",
        "engine_name": "file",
        "database_name": str(tmp_path / "lake"),
    }
    with httpx.Client(base_url=f"{server}/api/v1", cookies={SESSION_COOKIE: session}) as c:
        assert c.get("/endpoints").json() == []
        _error(c.post("/endpoints", json=body), 403, "forbidden")
        wrong = c.post("/endpoints", json=body, headers={"X-CSRF-Token": "0" * 64})
        _error(wrong, 403, "forbidden")
        made = c.post("/endpoints", json=body, headers={"X-CSRF-Token": csrf_token(session, key)})
        assert made.status_code == 201
        assert [e["identifier"] for e in c.get("/endpoints").json()] == ["lake"]
    forged = httpx.get(f"{server}/api/v1/endpoints", cookies={SESSION_COOKIE: "forged"})
    _error(forged, 401, "unauthorized")


def test_a_premigration_assessment_through_the_rest_api(rest: httpx.Client, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 3)
    _endpoints(rest, tmp_path)
    _task(rest, "checked")
    _error(rest.get("/tasks/checked/assessment"), 404, "not_found")
    started = rest.post("/tasks/checked/assessment")
    assert started.status_code == 202 and started.json()["status"] == "running"
    wait_until(
        lambda: rest.get("/tasks/checked/assessment").json()["status"] != "running",
        60,
        "the assessment",
    )
    run = rest.get("/tasks/checked/assessment").json()
    statuses = {c["id"]: c["status"] for c in run["checks"]}
    assert statuses["tables-selected"] == "passed" and statuses["target-writable"] == "passed"
    assert run["status"] == ("warning" if "warning" in statuses.values() else "passed")
    assert all(c["remediation"] for c in run["checks"] if c["status"] == "warning")
