"""The console's pages: endpoints, tasks, a task's detail and schema conversion (see
:mod:`opendms.server.console`). Each change is one DmsApi call with a DMS-shaped body."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opendms.errors import ConfigError, OpenDMSError
from opendms.server import console_data as data
from opendms.server.console import PREFIX, Console
from opendms.server.dmsapi import DmsApi
from opendms.server.shapes import Body, DmsError

ENGINES = [
    ("postgres", "PostgreSQL"),
    ("mysql", "MySQL"),
    ("mariadb", "MariaDB"),
    ("sqlite", "SQLite"),
    ("s3", "Amazon S3 (or compatible) lake"),
    ("file", "Local file lake"),
]
MIGRATION_TYPES = ["full-load", "full-load-and-cdc", "cdc"]
FRAGMENTS = ("tables", "errors", "validation", "assessment")  # refreshed by polling
ACTIONS = {
    "start": "start-replication",
    "resume": "resume-processing",
    "reload": "reload-target",
}
DEFAULT_MAPPINGS = """{
  "rules": [
    {
      "rule-type": "selection",
      "rule-id": "1",
      "rule-name": "include-all",
      "object-locator": {"schema-name": "%", "table-name": "%"},
      "rule-action": "include"
    }
  ]
}"""
# which form field an API error is about: words of its message -> the field's name
ENDPOINT_FIELDS = {
    "EndpointIdentifier": "identifier",
    "EndpointType": "endpoint_type",
    "EngineName": "engine",
    "BucketName": "bucket",
    "ExtraConnectionAttributes": "extra",
}
TASK_FIELDS = {
    "ReplicationTaskIdentifier": "identifier",
    "SourceEndpointArn": "source",
    "TargetEndpointArn": "target",
    "migration_type": "migration_type",
    "MigrationType": "migration_type",
    "TableMappings": "mappings",
    "table_mappings": "mappings",
    "ReplicationTaskSettings": "settings",
    "task_settings": "settings",
    "already exists": "identifier",
}


def field_of(message: str, fields: dict[str, str]) -> str:
    """The form field an error message names ("" for the form as a whole)."""
    return next((name for word, name in fields.items() if word in message), "")


def _f(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# --- endpoints ----------------------------------------------------------------------------


def endpoint_body(form: FormData) -> tuple[Body, dict[str, str]]:
    """The CreateEndpoint body of the endpoint form, and its field errors."""
    engine = _f(form, "engine")
    body: Body = {
        "EndpointIdentifier": _f(form, "identifier"),
        "EndpointType": _f(form, "endpoint_type"),
        "EngineName": engine,
    }
    errors: dict[str, str] = {}
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,254}", body["EndpointIdentifier"]):
        errors["identifier"] = "Start with a letter; letters, digits and hyphens only."
    if engine in ("sqlite", "file"):
        body["DatabaseName"] = _f(form, "path")
        if not body["DatabaseName"]:
            errors["path"] = "The file's (or folder's) path is required."
    elif engine == "s3":
        body["S3Settings"] = {"BucketName": _f(form, "bucket"), "BucketFolder": _f(form, "folder")}
        if _f(form, "server"):
            body["ServerName"] = _f(form, "server")
    else:
        _database_fields(form, body, errors)
    if _f(form, "extra"):
        body["ExtraConnectionAttributes"] = _f(form, "extra")
    return body, errors


def _database_fields(form: FormData, body: Body, errors: dict[str, str]) -> None:
    for key, name in (
        ("ServerName", "server"),
        ("DatabaseName", "database"),
        ("Username", "username"),
    ):
        body[key] = _f(form, name)
        if not body[key]:
            errors[name] = "Required."
    password = form.get("password")
    if isinstance(password, str) and password:
        body["Password"] = password
    port = _f(form, "port")
    if port:
        if port.isdigit() and 0 < int(port) < 65536:
            body["Port"] = int(port)
        else:
            errors["port"] = "A port number (1-65535)."


class EndpointPages:
    def __init__(self, c: Console) -> None:
        self.c = c

    async def listing(self, request: Request) -> Response:
        c = self.c
        rows = await c.read(data.endpoint_rows, c.reader)
        return c.render(request, "endpoints.html", endpoints=rows)

    async def new(self, request: Request) -> Response:
        c = self.c
        return _endpoint_form(c, request, {}, {})

    async def create(self, request: Request) -> Response:
        c = self.c
        form = await request.form()
        body, errors = endpoint_body(form)
        if not errors:
            try:
                await c.write(c.api.call, "CreateEndpoint", body)
            except DmsError as exc:
                errors[field_of(exc.message, ENDPOINT_FIELDS) or "_form"] = exc.message
        if errors:
            values = {k: v for k, v in form.items() if k not in ("password", "csrf")}
            return _endpoint_form(c, request, values, errors, status=400)
        name = body["EndpointIdentifier"]
        return c.redirect(f"{PREFIX}/endpoints", ("ok", f"Endpoint {name} created."))

    async def test(self, request: Request) -> Response:
        c = self.c
        ident = request.path_params["ident"]
        try:
            arn = (await c.read(data.endpoint_by_id, c.reader, ident))["EndpointArn"]
            conn = (await c.write(c.api.call, "TestConnection", {"EndpointArn": arn}))["Connection"]
        except DmsError as exc:
            conn = {"Status": "failed", "LastFailureMessage": exc.message}
        out = {"status": conn["Status"], "message": conn.get("LastFailureMessage", "")}
        if request.headers.get("x-requested-with") == "fetch":
            return JSONResponse(out)
        kind = "ok" if out["status"] == "successful" else "error"
        text = f"Test connection of {ident}: {out['status']}. {out['message']}".strip()
        return c.redirect(f"{PREFIX}/endpoints", (kind, text))

    async def delete(self, request: Request) -> Response:
        c = self.c
        ident = request.path_params["ident"]
        try:
            arn = (await c.read(data.endpoint_by_id, c.reader, ident))["EndpointArn"]
            await c.write(c.api.call, "DeleteEndpoint", {"EndpointArn": arn})
        except DmsError as exc:
            return c.redirect(f"{PREFIX}/endpoints", ("error", exc.message))
        return c.redirect(f"{PREFIX}/endpoints", ("ok", f"Endpoint {ident} deleted."))

    def routes(self) -> list[BaseRoute]:
        g = self.c.guarded
        return [
            Route("/endpoints", g(self.listing), methods=["GET"]),
            Route("/endpoints", g(self.create), methods=["POST"]),
            Route("/endpoints/new", g(self.new), methods=["GET"]),
            Route("/endpoints/{ident}/test", g(self.test), methods=["POST"]),
            Route("/endpoints/{ident}/delete", g(self.delete), methods=["POST"]),
        ]


def _endpoint_form(
    c: Console, request: Request, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Response:
    return c.render(
        request, "endpoint_new.html", status, engines=ENGINES, values=values, errors=errors
    )


# --- tasks --------------------------------------------------------------------------------


def task_body(form: FormData, api: DmsApi) -> tuple[Body, dict[str, str]]:
    """The CreateReplicationTask body of the task form, and its field errors (table
    mappings are checked as a run will read them, errors naming their JSON path)."""
    from opendms.mapping import parse_table_mappings

    body: Body = {
        "ReplicationTaskIdentifier": _f(form, "identifier"),
        "SourceEndpointArn": _f(form, "source"),
        "TargetEndpointArn": _f(form, "target"),
        "MigrationType": _f(form, "migration_type"),
        "TableMappings": _f(form, "mappings"),
        "ReplicationInstanceArn": api._instance_arn(),
    }
    errors: dict[str, str] = {}
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,254}", body["ReplicationTaskIdentifier"]):
        errors["identifier"] = "Start with a letter; letters, digits and hyphens only."
    for key, name in (("SourceEndpointArn", "source"), ("TargetEndpointArn", "target")):
        if not body[key]:
            errors[name] = "Choose an endpoint."
    if _f(form, "settings"):
        body["ReplicationTaskSettings"] = _f(form, "settings")
    try:
        parse_table_mappings(body["TableMappings"] or "{}", where="TableMappings")
    except ConfigError as exc:
        errors["mappings"] = exc.message
    return body, errors


class TaskPages:
    def __init__(self, c: Console) -> None:
        self.c = c

    async def listing(self, request: Request) -> Response:
        c = self.c
        rows = await c.read(data.task_rows, c.reader)
        return c.render(request, "tasks.html", tasks=rows)

    async def listing_json(self, request: Request) -> Response:
        c = self.c
        rows = await c.read(data.task_rows, c.reader)
        html = c.fragment(request, "_task_rows.html", tasks=rows)
        return JSONResponse(
            {"html": html, "count": len(rows)}, headers={"Cache-Control": "no-store"}
        )

    async def new(self, request: Request) -> Response:
        c = self.c
        return await _task_form(c, request, {"mappings": DEFAULT_MAPPINGS}, {})

    async def create(self, request: Request) -> Response:
        c = self.c
        form = await request.form()
        body, errors = task_body(form, c.api)
        if not errors:
            try:
                await c.write(c.api.call, "CreateReplicationTask", body)
            except DmsError as exc:
                errors[field_of(exc.message, TASK_FIELDS) or "_form"] = exc.message
        if errors:
            values = {k: v for k, v in form.items() if k != "csrf"}
            return await _task_form(c, request, values, errors, status=400)
        name = body["ReplicationTaskIdentifier"]
        return c.redirect(f"{PREFIX}/tasks/{name}", ("ok", f"Task {name} created."))

    def routes(self) -> list[BaseRoute]:
        g = self.c.guarded
        return [
            Route("/tasks", g(self.listing), methods=["GET"]),
            Route("/tasks", g(self.create), methods=["POST"]),
            Route("/tasks.json", g(self.listing_json), methods=["GET"]),
            Route("/tasks/new", g(self.new), methods=["GET"]),
            *DetailPages(self.c).routes(),
        ]


async def _task_form(
    c: Console, request: Request, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Response:
    endpoints = await c.read(data.endpoint_rows, c.reader)
    return c.render(
        request,
        "task_new.html",
        status,
        values=values,
        errors=errors,
        types=MIGRATION_TYPES,
        sources=[e for e in endpoints if e["EndpointType"] == "SOURCE"],
        targets=[e for e in endpoints if e["EndpointType"] == "TARGET"],
    )


class DetailPages:
    def __init__(self, c: Console) -> None:
        self.c = c

    async def detail(self, request: Request) -> Response:
        c = self.c
        ident = request.path_params["ident"]
        try:
            d = await c.read(data.task_detail, c.reader, ident)
        except DmsError as exc:
            return c.render(request, "error.html", 404, message=exc.message)
        parts = _parts(c, request, d)
        return c.render(request, "task.html", d=d, levels=data.LEVELS, **parts)

    async def stats(self, request: Request) -> Response:
        c = self.c
        try:
            d = await c.read(data.task_detail, c.reader, request.path_params["ident"])
        except DmsError as exc:
            return JSONResponse({"error": exc.message}, status_code=404)
        out = {
            "time": time.time(),
            "status": d.row["status"],
            "stop_reason": d.row["stop_reason"],
            "phase": d.row["phase"],
            "progress": d.row["progress"],
            "latency": d.row["metrics"].get("source_latency_s", 0.0),
            "changes": sum(
                int(t["FullLoadRows"]) + int(t["Inserts"]) + int(t["Updates"]) + int(t["Deletes"])
                for t in d.tables
            ),
            **{k: c.fragment(request, f"_{k}.html", d=d) for k in FRAGMENTS},
        }
        return JSONResponse(out, headers={"Cache-Control": "no-store"})

    async def log(self, request: Request) -> Response:
        c = self.c
        ident = request.path_params["ident"]
        state_file = c.reader.service.state_path
        q = request.query_params
        lines = await c.read(data.task_log, state_file, ident, q.get("level", ""), q.get("q", ""))
        html = c.fragment(
            request, "_log.html", lines=lines, has_log=data.has_log(state_file, ident)
        )
        return JSONResponse(
            {"html": html, "count": len(lines)}, headers={"Cache-Control": "no-store"}
        )

    async def action(self, request: Request) -> Response:
        c = self.c
        ident, what = request.path_params["ident"], request.path_params["action"]
        here = f"{PREFIX}/tasks/{ident}"
        try:
            arn = (await c.read(data.task_by_id, c.reader, ident))["ReplicationTaskArn"]
            await c.write(_act, c.api, arn, what)
        except OpenDMSError as exc:
            return c.redirect(here, ("error", f"{what}: {exc.message}"))
        if what == "delete":
            return c.redirect(f"{PREFIX}/tasks", ("ok", f"Task {ident} deleted."))
        if what == "assess":
            return c.redirect(here, ("ok", f"Task {ident}: assessment started."))
        return c.redirect(here, ("ok", f"Task {ident}: {what} requested."))

    def routes(self) -> list[BaseRoute]:
        g = self.c.guarded
        return [
            Route("/tasks/{ident}", g(self.detail), methods=["GET"]),
            Route("/tasks/{ident}/stats.json", g(self.stats), methods=["GET"]),
            Route("/tasks/{ident}/log.json", g(self.log), methods=["GET"]),
            Route("/tasks/{ident}/{action:str}", g(self.action), methods=["POST"]),
        ]


def _parts(c: Console, request: Request, d: data.TaskDetail) -> dict[str, Any]:
    return {k: c.fragment(request, f"_{k}.html", d=d) for k in FRAGMENTS}


def _act(api: DmsApi, arn: str, what: str) -> Body:
    """One task action through the DMS API."""
    if what in ACTIONS:
        body = {"ReplicationTaskArn": arn, "StartReplicationTaskType": ACTIONS[what]}
        return api.call("StartReplicationTask", body)
    if what == "stop":
        return api.call("StopReplicationTask", {"ReplicationTaskArn": arn})
    if what == "delete":
        return api.call("DeleteReplicationTask", {"ReplicationTaskArn": arn})
    if what == "assess":
        name = f"console-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1000:03d}"
        body = {
            "ReplicationTaskArn": arn,
            "ServiceAccessRoleArn": "console",
            "ResultLocationBucket": "local",
            "AssessmentRunName": name,
        }
        return api.call("StartReplicationTaskAssessmentRun", body)
    raise DmsError("InvalidParameterValueException", f"unknown action {what!r}")


def page_routes(c: Console) -> list[BaseRoute]:
    """Every console page and its JSON routes (the login routes are the console's)."""
    from opendms.server.console_convert import convert_routes
    from opendms.server.console_query import query_routes
    from opendms.server.console_workflows import workflow_routes

    async def home(request: Request) -> Response:
        return c.redirect(f"{PREFIX}/tasks")

    return [
        Route("/", c.guarded(home), methods=["GET"]),
        *EndpointPages(c).routes(),
        *TaskPages(c).routes(),
        *convert_routes(c),
        *workflow_routes(c),
        *query_routes(c),
    ]
