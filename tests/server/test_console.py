"""The web console in a real browser (Debian's chromium through Playwright): log in with
the server's token, create endpoints and a task from the forms, watch it load and
replicate, see validation failures, stop and resume it; the session, CSRF and password
rules; the layout at laptop and phone widths (screenshots)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from opendms.server.auth import load_or_create_token
from tests.server.browser import browser  # noqa: F401 - the fixture
from tests.support.servers import PASSWORD, PASSWORD_USER
from tests.support.sql import execute

pytestmark = pytest.mark.timeout(300)

LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT = 60_000  # ms a live value may take to show


class Pages:
    """A browser page on the console that remembers every HTML it saw."""

    def __init__(self, page: Any, server: str, shots: Path) -> None:
        self.page, self.server, self.shots = page, server, shots
        self.html: list[str] = []
        page.on("dialog", lambda dialog: dialog.accept())  # the confirmations

    def go(self, path: str) -> Any:
        self.page.goto(self.server + path)
        return self.keep()

    def keep(self) -> Any:
        self.page.wait_for_load_state()
        self.html.append(self.page.content())
        return self.page

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, token: str) -> None:
        page = self.go("/console/login")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Log in").click()
        self.keep()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def console(browser: Any, server: str, tmp_path: Path) -> Iterator[Pages]:  # noqa: F811
    context = browser.new_context(viewport=LAPTOP)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Pages(context.new_page(), server, shots)
    finally:
        context.close()


def _sqlite_source(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(10)])


def _create_endpoint(pages: Pages, fields: dict[str, str]) -> None:
    page = pages.go("/console/endpoints/new")
    page.get_by_label("Engine").select_option(fields.pop("engine"))
    page.get_by_label("Endpoint type").select_option(fields.pop("type"))
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Create endpoint").click()
    pages.keep()
    assert "created" in page.locator(".flash").inner_text()


def test_session_csrf_and_login(console: Pages, server: str, state: Path, tmp_path: Path) -> None:
    page = console.go("/")
    assert urlsplit(page.url).path == "/console/login"  # / -> /console/tasks -> login
    for path in ("/console/endpoints", "/console/tasks/new", "/console/convert"):
        assert urlsplit(console.go(path).url).path == "/console/login", path
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    assert "not the server's token" in console.keep().locator(".error").inner_text()
    token, _ = load_or_create_token(state)
    assert str((state / "token").resolve()) in page.content()  # the token file is named

    console.login(token)
    assert urlsplit(page.url).path == "/console/tasks"
    cookie = next(c for c in page.context.cookies() if c["name"] == "opendms_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    _sqlite_source(tmp_path / "src.db")
    _create_endpoint(
        console,
        {
            "engine": "sqlite",
            "type": "source",
            "Endpoint identifier": "lite",
            "Path": str(tmp_path / "src.db"),
        },
    )
    rows = page.locator("#endpoints tbody tr")
    assert rows.count() == 1 and "lite" in rows.first.inner_text()

    # a POST with a wrong CSRF token (but a valid session) is refused and changes nothing
    jar = {"opendms_session": cookie["value"]}
    form = {
        "csrf": "0" * 64,
        "identifier": "evil",
        "endpoint_type": "source",
        "engine": "sqlite",
        "path": "/x",
    }
    with httpx.Client(base_url=server, cookies=jar) as http:
        assert http.post("/console/endpoints", data=form).status_code == 403
        assert http.post("/console/endpoints/lite/delete", data={"csrf": "x"}).status_code == 403
        listing = http.get("/console/endpoints").text
    assert "lite" in listing and "evil" not in listing
    # without a session: a page redirects to the login page, a JSON route answers 401
    with httpx.Client(base_url=server) as http:
        anonymous = http.post("/console/endpoints", data=form)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(
            "/console/login"
        )
        assert http.get("/console/tasks.json").status_code == 401
    assert console.go("/console/endpoints").locator("#endpoints tbody tr").count() == 1

    page.get_by_role("button", name="Test connection").click()
    page.locator("#endpoints .conn").get_by_text("successful").wait_for(timeout=WAIT)

    page.set_viewport_size(PHONE)
    console.go("/console/endpoints/new")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    console.shot("endpoint-form-phone")
    page.set_viewport_size(LAPTOP)

    page.get_by_role("button", name="Log out").click()
    console.keep()
    assert urlsplit(console.go("/console/tasks").url).path == "/console/login"


def _stat(page: Any, table: str, column: int) -> str:
    row = page.locator("#tables-body tr", has_text=table)
    return str(row.locator("td").nth(column).inner_text())


def _cleanup(server: str, token: str) -> None:
    """Stop and delete the tasks (a CDC task's slot lives in the source database)."""
    import boto3

    dms = boto3.session.Session().client(
        "dms",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    for task in dms.describe_replication_tasks()["ReplicationTasks"]:
        arn = task["ReplicationTaskArn"]
        if task["Status"] in ("starting", "running", "stopping"):
            if task["Status"] != "stopping":
                dms.stop_replication_task(ReplicationTaskArn=arn)  # answers "stopping"
            dms.get_waiter("replication_task_stopped").wait(
                Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
                WaiterConfig={"Delay": 0.5, "MaxAttempts": 240},
            )
        dms.delete_replication_task(ReplicationTaskArn=arn)


def test_console_runs_a_postgres_migration(
    console: Pages, server: str, state: Path, pg_db: str, pg_target_db: str
) -> None:
    execute(
        pg_db,
        [
            "CREATE TABLE items (id int PRIMARY KEY, name text)",
            "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 50) g",
        ],
    )
    token, _ = load_or_create_token(state)
    console.login(token)
    page = console.page
    try:
        _acceptance(console, page, pg_db, pg_target_db)
    finally:
        _cleanup(server, token)
    for html in console.html:
        assert PASSWORD not in html


def _endpoints(console: Pages, pg_db: str, pg_target_db: str) -> None:
    for ident, kind, url in (("pg-source", "source", pg_db), ("pg-target", "target", pg_target_db)):
        u = urlsplit(url)
        fields = {
            "engine": "postgres",
            "type": kind,
            "Endpoint identifier": ident,
            "Server name": str(u.hostname),
            "Port": str(u.port),
            "Database name": u.path.lstrip("/"),
            "User name": PASSWORD_USER,
            "Password": PASSWORD,
        }
        _create_endpoint(console, fields)
    page = console.page
    for ident in ("pg-source", "pg-target"):
        row = page.locator("#endpoints tbody tr", has_text=ident)
        row.get_by_role("button", name="Test connection").click()
        row.locator(".conn").get_by_text("successful").wait_for(timeout=WAIT)
    console.keep()


def _create_task(console: Pages) -> None:
    page = console.go("/console/tasks/new")
    page.get_by_label("Task identifier").fill("items-cdc")
    page.get_by_label("Source endpoint").select_option(label="pg-source (postgres)")
    page.get_by_label("Target endpoint").select_option(label="pg-target (postgres)")
    page.get_by_label("Migration type").select_option("full-load-and-cdc")
    page.get_by_label("Table mappings (JSON)").fill("")
    page.get_by_label("Schema", exact=True).fill("public")
    page.get_by_label("Table", exact=True).fill("items")
    page.get_by_role("button", name="Add rule").click()
    rules = json.loads(page.get_by_label("Table mappings (JSON)").input_value())["rules"]
    assert rules == [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "include-1",
            "object-locator": {"schema-name": "public", "table-name": "items"},
            "rule-action": "include",
        }
    ]
    settings = {
        "ValidationSettings": {"EnableValidation": True},
        "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
    }
    page.get_by_label("Task settings (JSON, optional)").fill(json.dumps({"Bogus": 1}))
    page.get_by_role("button", name="Create task").click()
    error = console.keep().locator("#e-settings").inner_text()
    assert "$.task_settings.Bogus" in error  # the error sits next to its field, with its path
    page.get_by_label("Task settings (JSON, optional)").fill(json.dumps(settings))
    page.get_by_role("button", name="Create task").click()
    console.keep()
    assert urlsplit(page.url).path == "/console/tasks/items-cdc"


def _acceptance(console: Pages, page: Any, pg_db: str, pg_target_db: str) -> None:
    from playwright.sync_api import expect

    _endpoints(console, pg_db, pg_target_db)
    _create_task(console)
    _act(console, "Run assessment")  # the premigration checks, with their remediations
    checks = page.locator("#assessment-checks tbody tr")
    expect(checks.filter(has_text="tables-selected")).to_contain_text("passed", timeout=WAIT)
    expect(page.locator("#assessment-status")).to_have_text(re.compile("passed|warning"))
    assert checks.count() >= 5
    for row in checks.filter(has_text="warning").all():  # each warning says what to do
        assert row.locator("td").nth(4).inner_text().strip(), row.inner_text()
    _act(console, "Start")
    expect(page.locator("#status")).to_have_text("running", timeout=WAIT)
    expect(page.locator("#tables-body tr", has_text="items")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#tables-body tr", has_text="items").locator("td").nth(3)).to_have_text(
        "50", timeout=WAIT
    )
    expect(page.locator("#phase")).to_have_text("ongoing replication", timeout=WAIT)

    execute(pg_db, ["INSERT INTO items VALUES (101, 'a'), (102, 'b'), (103, 'c')"])
    expect(page.locator("#tables-body tr", has_text="items").locator("td").nth(4)).to_have_text(
        "3", timeout=30_000
    )
    # the target alters row 5 on its own (a trigger): once the update is applied,
    # validation of the changed rows reports it, source and target values side by side
    execute(
        pg_target_db,
        [
            "CREATE FUNCTION damage() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN IF NEW.id = 5 THEN NEW.name := 'damaged'; END IF; RETURN NEW; END$$",
            "CREATE TRIGGER damage BEFORE UPDATE ON public.items "
            "FOR EACH ROW EXECUTE FUNCTION damage()",
            "ALTER TABLE public.items ENABLE ALWAYS TRIGGER damage",
        ],
    )
    execute(pg_db, ["UPDATE items SET name = 'renamed' WHERE id IN (5, 6)"])
    expect(page.locator("#tables-body tr", has_text="items").locator("td").nth(5)).to_have_text(
        "2", timeout=30_000
    )
    failure = page.locator("#validation-failures tbody tr")
    expect(failure).to_have_count(1, timeout=WAIT)
    cells = [failure.locator("td").nth(i).inner_text() for i in range(6)]
    assert cells == ["public.items", "id=5", "RECORD_DIFF", "name", "renamed", "damaged"], cells
    expect(page.locator("#tables-body tr", has_text="items").locator("td").nth(8)).to_have_text(
        "Mismatched records (1)", timeout=WAIT
    )

    _check_table_tools(page)
    expect(page.locator("#chart polyline.rows")).to_have_count(1, timeout=WAIT)
    console.keep()
    console.shot("task-running-laptop")
    _copy_screenshot(console.shot("task-detail"))
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    console.shot("task-running-phone")
    console.go("/console/tasks")
    row = page.locator("#task-rows tr", has_text="items-cdc")
    expect(row).to_contain_text("running")
    assert "pg-source" in row.inner_text() and "full-load-and-cdc" in row.inner_text()
    console.shot("tasks-phone")
    page.set_viewport_size(LAPTOP)

    console.go("/console/tasks/items-cdc")
    _act(console, "Stop")
    expect(page.locator("#status")).to_have_text("stopped", timeout=WAIT)
    expect(page.locator("#stop-reason")).to_have_text("STOPPED_BY_USER")
    _act(console, "Resume")
    expect(page.locator("#status")).to_have_text("running", timeout=WAIT)
    execute(pg_db, ["DELETE FROM items WHERE id = 101"])
    expect(page.locator("#tables-body tr", has_text="items").locator("td").nth(6)).to_have_text(
        "1", timeout=30_000
    )
    _check_log(page)


def _act(console: Pages, button: str) -> None:
    """Click a task action (confirmed) and check the page says it was done."""
    console.page.get_by_role("button", name=button, exact=True).click()
    flash = console.keep().locator(".flash")
    assert flash.get_attribute("class") == "flash ok", flash.inner_text()


def _check_table_tools(page: Any) -> None:
    """The statistics table sorts by a clicked column and filters by name."""
    from playwright.sync_api import expect

    page.locator("#table-stats th", has_text="Table").get_by_role("button").click()
    expect(page.locator("#table-stats th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    page.get_by_label("Filter tables").fill("no-such-table")
    expect(page.locator("#tables-body tr:visible")).to_have_count(0)
    page.get_by_label("Filter tables").fill("item")
    expect(page.locator("#tables-body tr:visible")).to_have_count(1)


def _check_log(page: Any) -> None:
    """The task's log: its lines, filtered by level and by a search."""
    from playwright.sync_api import expect

    body = page.locator("#log-body")
    expect(body).not_to_contain_text("Loading", timeout=WAIT)
    page.get_by_label("Search", exact=True).fill("zz-no-such-text-zz")
    expect(body).to_contain_text("No matching log lines", timeout=WAIT)
    page.get_by_label("Search", exact=True).fill("")
    expect(page.locator("#log-body .lvl-info").first).to_contain_text("[TASK_MANAGER]")
    page.get_by_label("Level").select_option("WARNING")
    expect(page.locator("#log-body .lvl-info")).to_have_count(0, timeout=WAIT)
    warning = page.locator("#log-body .lvl-warning", has_text="differ between source and target")
    expect(warning.first).to_contain_text("[VALIDATOR]", timeout=WAIT)
    page.get_by_label("Level").select_option("ERROR")
    expect(page.locator("#log-body .lvl-warning")).to_have_count(0, timeout=WAIT)


def _copy_screenshot(path: Path) -> None:
    """With OPENDMS_CONSOLE_SCREENSHOT=FILE, keep the task page's screenshot there (the
    README's docs/console.png)."""
    target = os.environ.get("OPENDMS_CONSOLE_SCREENSHOT")
    if target:
        shutil.copyfile(path, target)


def test_console_validation_errors_show_their_json_path(
    console: Pages, state: Path, tmp_path: Path
) -> None:
    token, _ = load_or_create_token(state)
    console.login(token)
    _sqlite_source(tmp_path / "src.db")
    _create_endpoint(
        console,
        {
            "engine": "sqlite",
            "type": "source",
            "Endpoint identifier": "lite",
            "Path": str(tmp_path / "src.db"),
        },
    )
    _create_endpoint(
        console,
        {
            "engine": "file",
            "type": "target",
            "Endpoint identifier": "lake",
            "Path": str(tmp_path / "lake"),
        },
    )
    page = console.go("/console/tasks/new")
    page.get_by_label("Task identifier").fill("lite-task")
    mappings = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "x",
                "object-locator": {"schema-name": "%"},
                "rule-action": "include",
            }
        ]
    }
    page.get_by_label("Table mappings (JSON)").fill(json.dumps(mappings))
    page.get_by_role("button", name="Create task").click()
    error = console.keep().locator("#e-mappings").inner_text()
    assert "$.rules[0].object-locator.table-name" in error and "required" in error
    assert page.get_by_label("Table mappings (JSON)").get_attribute("aria-invalid") == "true"
    page.get_by_label("Table mappings (JSON)").fill("{not json")
    page.get_by_role("button", name="Add rule").click()
    assert "not valid JSON" in page.locator("#rule-error").inner_text()
    page.get_by_label("Table mappings (JSON)").fill("")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_role("button", name="Create task").click()
    console.keep()
    assert urlsplit(page.url).path == "/console/tasks/lite-task"
    assert page.locator("#status").inner_text() == "ready"
    assert "not enabled" in page.locator("#validation-body").inner_text()
    console.go("/console/tasks")
    cells = page.locator("#task-rows tr").first.locator("td").all_inner_texts()
    assert [cells[0], cells[1].split()[0], cells[3], cells[4], cells[5]] == [
        "lite-task",
        "ready",
        "full-load-and-cdc",
        "lite",
        "lake",
    ]
    page.locator("#task-rows a", has_text="lite-task").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    console.keep()
    assert urlsplit(page.url).path == "/console/tasks"
    assert re.search(r"Task lite-task deleted", page.locator(".flash").inner_text())


def test_schema_conversion_page(console: Pages, state: Path, tmp_path: Path) -> None:
    token, _ = load_or_create_token(state)
    console.login(token)
    _sqlite_source(tmp_path / "src.db")
    _create_endpoint(
        console,
        {
            "engine": "sqlite",
            "type": "source",
            "Endpoint identifier": "lite",
            "Path": str(tmp_path / "src.db"),
        },
    )
    page = console.go("/console/convert")
    page.get_by_label("Source endpoint").select_option("lite")
    page.get_by_label("Target engine").select_option("postgresql")
    page.get_by_role("button", name="Convert").click()
    console.keep()
    row = page.locator("#action-items tbody tr", has_text="items")
    assert row.count() >= 1
    assert "converted" in row.first.inner_text()
    assert (
        "CREATE TABLE" in page.locator("pre.ddl").inner_text(timeout=WAIT)
        or page.locator("pre.ddl").text_content()
    )
