"""The Starlette application of ``opendms serve``: ``POST /`` is the DMS JSON API,
``/api/v1`` the REST API (:mod:`opendms.server.rest`, token-protected), ``GET /healthz``
says the server is up.

The DMS API accepts SigV4-signed requests as boto3 and the AWS CLI send them; with
access keys configured it verifies their signatures (:mod:`opendms.server.sigv4`).
Request bodies are limited (:class:`BodyLimit`, 1 MiB by default): a larger one is
answered 413 in the shape of the API it was sent to."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opendms.errors import ConfigError
from opendms.server.auth import bearer, load_or_create_key, load_or_create_token, token_matches
from opendms.server.console import console_routes
from opendms.server.dmsapi import TARGET_PREFIX, DmsApi
from opendms.server.functions import function_routes
from opendms.server.metrics import metrics_endpoint
from opendms.server.resources import SqliteResources, endpoint_url
from opendms.server.rest import PREFIX, create_rest, error_response
from opendms.server.sfnapi import SFN_CONTENT_TYPE, SFN_PREFIX, StepFunctionsApi, WorkflowScheduler
from opendms.server.shapes import DmsError
from opendms.server.sigv4 import SignedRequest, verify
from opendms.server.supervisor import Supervisor, lifespan_of
from opendms.server.views import CachedTaskService

CONTENT_TYPE = "application/x-amz-json-1.1"
Handler = Callable[[Request], Awaitable[Response]]
MAX_BODY = 1024 * 1024  # bytes a request body may have
log = logging.getLogger(__name__)


def fault(exc: DmsError) -> Response:
    body = {"__type": exc.code, "message": exc.message}
    return JSONResponse(body, status_code=exc.status, media_type=CONTENT_TYPE)


def check_signature(request: Request, body: bytes, keys: dict[str, str]) -> None:
    """Verify the request's SigV4 signature against ``keys`` (none: accept any)."""
    if not keys:
        return
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    signed = SignedRequest(
        request.method,
        raw_path.decode("latin-1").split("?", 1)[0],
        request.scope.get("query_string", b"").decode("latin-1"),
        headers,
        body,
    )
    verify(signed, keys)


def create_app(
    state: Path,
    region: str = "us-east-1",
    *,
    access_keys: dict[str, str] | None = None,
    max_body: int = MAX_BODY,
    functions: dict[str, str] | None = None,
    public_functions: bool = False,
) -> Starlette:
    """The app over the state folder ``state`` (the server's resources in
    ``server.db``, the tasks in ``state.db``, task files in ``tasks/``); ``access_keys``:
    access key id -> secret for SigV4 verification (None or empty: not verified);
    ``functions``: name -> ``module:function`` served at ``/functions/NAME``
    (:mod:`opendms.server.functions`), behind the token unless ``public_functions``."""
    state.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(state)
    token, _ = load_or_create_token(state)
    resources = SqliteResources(state / "server.db", key)
    api = DmsApi(resources, CachedTaskService(state / "state.db"), state, region)
    keys = dict(access_keys or {})

    sfn = StepFunctionsApi(state, region, lambda: _endpoint_urls(resources))

    async def dms(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        try:
            raw = await request.body()
            check_signature(request, raw, keys)
            if target.startswith(SFN_PREFIX):
                body = _body(raw)
                operation = target[len(SFN_PREFIX) :]
                out = await anyio.to_thread.run_sync(sfn.call, operation, body)
                return Response(json.dumps(out), media_type=SFN_CONTENT_TYPE)
            if not target.startswith(TARGET_PREFIX):
                raise DmsError("UnknownOperationException", f"unknown target {target!r}")
            body = _body(raw)
            out = await anyio.to_thread.run_sync(api.call, target[len(TARGET_PREFIX) :], body)
        except DmsError as exc:
            return fault(exc)
        return Response(json.dumps(out), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    supervisor = Supervisor(state)  # task supervision and schedules
    workflows = WorkflowScheduler(sfn, supervisor.scheduler.clock)
    supervisor.extra_ticks += [workflows.tick]
    supervisor.on_start += [sfn.resume_interrupted]
    routes: list[BaseRoute] = [
        Route("/", dms, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", _token_only(metrics_endpoint(state / "state.db"), token)),
        *function_routes(functions or {}, _open if public_functions else _guard(token)),
        Mount(PREFIX, app=create_rest(api, token, key)),
        *console_routes(api, state),  # /console, and GET / redirecting there
    ]
    app = Starlette(routes=routes, lifespan=lifespan_of(supervisor))
    app.state.supervisor = supervisor
    app.state.sfn = sfn
    app.state.workflow_scheduler = workflows
    app.add_middleware(BodyLimit, limit=max_body)
    return app


def _endpoint_urls(resources: SqliteResources) -> dict[str, str]:
    """The server's endpoints by identifier, as workflow resources name them (one whose
    password cannot be read is left out)."""
    found: dict[str, str] = {}
    for endpoint in resources.endpoints():
        try:
            found[endpoint.identifier] = endpoint_url(endpoint)[0]
        except ConfigError:
            continue
    return found


def _open(endpoint: Handler) -> Handler:
    return endpoint


def _guard(token: str) -> Callable[[Handler], Handler]:
    return lambda endpoint: _token_only(endpoint, token)


def _token_only(
    endpoint: Callable[[Request], Awaitable[Response]], token: str
) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` behind the server's bearer token (a Prometheus scrape job sets it
    with ``authorization: {credentials_file: DIR/token}``)."""

    async def guarded(request: Request) -> Response:
        if not token_matches(bearer(request.headers.get("authorization")), token):
            return PlainTextResponse(
                "this endpoint needs the server's token: Authorization: Bearer <token>\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await endpoint(request)

    return guarded


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise DmsError("SerializationException", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise DmsError("SerializationException", "the request body is not a JSON object")
    return body


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 (a declared
    Content-Length at once, a chunked body once it passes the limit); a smaller one is
    read and handed on."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.limit} bytes"
        if scope["path"] == "/" and scope["method"] == "POST":
            response: Response = fault(DmsError("RequestEntityTooLargeException", message, 413))
        else:
            response = error_response(413, message)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
