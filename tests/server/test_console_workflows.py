"""The console's workflow pages in a real browser: a state machine and its execution
started through the Step Functions API show up with their status and history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opendms.server.auth import load_or_create_token
from tests.server.browser import browser  # noqa: F401 - the fixture
from tests.server.test_console import Pages, console, state  # noqa: F401 - fixtures
from tests.server.test_stepfunctions import _client, _finished

pytestmark = pytest.mark.timeout(300)


def test_executions_and_their_history_in_the_console(
    console: Pages,  # noqa: F811
    server: str,
    state: Path,  # noqa: F811
) -> None:
    sfn = _client(server, "stepfunctions")
    definition = {
        "StartAt": "Hello",
        "States": {
            "Hello": {"Type": "Pass", "Result": {"greeting": "hi"}, "Next": "Stop"},
            "Stop": {"Type": "Fail", "Error": "Custom.Stop", "Cause": "on purpose"},
        },
    }
    arn = sfn.create_state_machine(name="greeter", definition=json.dumps(definition), roleArn="r")
    started = sfn.start_execution(stateMachineArn=arn["stateMachineArn"], name="greet-1")
    assert _finished(sfn, started["executionArn"])["status"] == "FAILED"

    console.login(load_or_create_token(state)[0])
    page: Any = console.go("/console/workflows")
    assert page.locator("#machines tr[data-id=greeter]").count() == 1
    row = page.locator("#executions tr[data-id=greet-1]")
    assert "FAILED" in row.inner_text() and "greeter" in row.inner_text()
    row.get_by_role("link", name="greet-1").click()
    console.keep()
    assert page.locator("#status").inner_text() == "FAILED"
    assert page.locator("#error").inner_text() == "Custom.Stop: on purpose"
    kinds = page.locator("#history tbody tr td:nth-child(3)").all_inner_texts()
    assert kinds == [
        "ExecutionStarted",
        "StateEntered",
        "StateExited",
        "StateEntered",
        "ExecutionFailed",
    ]
    assert '"greeting": "hi"' in page.locator("#history").inner_text()
    missing = console.go("/console/workflows/nope")
    assert "No execution named nope" in missing.content()


def test_the_query_page_runs_a_query_over_the_servers_endpoints(
    console: Pages,  # noqa: F811
    server: str,
    state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import sqlite3

    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", [(1, "pen"), (2, "ink"), (3, None)])
    conn.commit()
    conn.close()
    _client(server, "dms").create_endpoint(
        EndpointIdentifier="shop", EndpointType="source", EngineName="sqlite", DatabaseName=str(db)
    )
    console.login(load_or_create_token(state)[0])
    page: Any = console.go("/console/query")
    assert "shop" in page.locator("main").inner_text()
    page.get_by_label("SQL").fill("SELECT id, name FROM shop.main.items WHERE id >= 2 ORDER BY id")
    page.get_by_role("button", name="Run").click()
    console.keep()
    assert page.locator("#query-summary").inner_text().startswith("2 row(s)")
    cells = page.locator("#answer tbody tr").all_inner_texts()
    assert [c.split("\t") for c in cells] == [["2", "ink"], ["3", "NULL"]]
    asked = page.locator("#sources").inner_text()
    assert "WHERE" in asked and "2" in asked  # the filter went to SQLite
    page.get_by_label("SQL").fill("SELECT * FROM nope.main.items")
    page.get_by_role("button", name="Run").click()
    console.keep()
    assert "nope" in page.locator("#query-error").inner_text()
