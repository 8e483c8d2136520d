"""The Starlette application of ``opendms serve``: ``POST /`` is the DMS JSON API,
``GET /healthz`` says the server is up."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opendms.server.console import console_routes
from opendms.server.dmsapi import TARGET_PREFIX, DmsApi
from opendms.server.metrics import metrics_endpoint
from opendms.server.resources import SqliteResources
from opendms.server.shapes import DmsError
from opendms.server.supervisor import Supervisor, lifespan_of
from opendms.service import TaskService

CONTENT_TYPE = "application/x-amz-json-1.1"
log = logging.getLogger(__name__)


def check_signature(request: Request) -> None:
    """The hook for verifying SigV4 ``Authorization`` headers: accepted unverified in
    this version (no access keys are configured yet)."""


def fault(exc: DmsError) -> Response:
    body = {"__type": exc.code, "message": exc.message}
    return JSONResponse(body, status_code=exc.status, media_type=CONTENT_TYPE)


def create_app(state: Path, region: str = "us-east-1") -> Starlette:
    """The app over the state folder ``state`` (the server's resources in
    ``server.db``, the tasks in ``state.db``, task files in ``tasks/``)."""
    state.mkdir(parents=True, exist_ok=True)
    resources = SqliteResources(state / "server.db")
    api = DmsApi(resources, TaskService(state / "state.db"), state, region)
    # TaskService calls block (stop waits for the process): they run off the event
    # loop, one at a time (the service and its store are not shared across threads).
    serial = anyio.Lock()

    async def dms(request: Request) -> Response:
        check_signature(request)
        target = request.headers.get("x-amz-target", "")
        if not target.startswith(TARGET_PREFIX):
            return fault(DmsError("UnknownOperationException", f"unknown target {target!r}"))
        try:
            body = _body(await request.body())
            async with serial:
                out = await anyio.to_thread.run_sync(api.call, target[len(TARGET_PREFIX) :], body)
        except DmsError as exc:
            return fault(exc)
        return Response(json.dumps(out), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    supervisor = Supervisor(state)  # ops: task supervision, schedules and /metrics
    routes: list[BaseRoute] = [Route("/", dms, methods=["POST"]), Route("/healthz", healthz)]
    routes.append(Route("/metrics", metrics_endpoint(state / "state.db")))
    routes += console_routes(api, state, serial)  # /console, and GET / redirecting there
    app = Starlette(routes=routes, lifespan=lifespan_of(supervisor))
    app.state.supervisor = supervisor
    return app


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise DmsError("SerializationException", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise DmsError("SerializationException", "the request body is not a JSON object")
    return body
