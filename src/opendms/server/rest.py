"""The REST API at ``/api/v1``: endpoints and replication tasks by identifier, over the
same :class:`~opendms.server.dmsapi.DmsApi` as the DMS JSON API (one lifecycle, one set
of checks). Its OpenAPI document is ``/api/v1/openapi.json``.

Every call but the document needs the server's token (``Authorization: Bearer``) or the
console's session cookie; a cookie-authenticated change (POST, PATCH, PUT, DELETE) also
needs the session's ``X-CSRF-Token`` header. Every error has one shape,
``{"error": {"code", "message", "path"}}``: 400 bad input (``path``: the JSON path of the
bad field), 401 no or wrong token, 403 no CSRF token, 404 unknown resource, 409 wrong
state or taken identifier, 413 body too large, 422 a body or parameter of the wrong
shape. Calls that block run in worker threads."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from opendms.config import json_path
from opendms.errors import OpenDMSError
from opendms.server.auth import SESSION_COOKIE, bearer, csrf_valid, session_valid, token_matches
from opendms.server.dmsapi import DmsApi
from opendms.server.querying import server_query
from opendms.server.rest_models import (
    AssessmentOut,
    CheckOut,
    ConnectionOut,
    DataErrorOut,
    Deleted,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    ErrorOut,
    LogLineOut,
    LogQuery,
    QueryIn,
    QueryOut,
    ScheduleRunOut,
    TableOut,
    TaskCreate,
    TaskOut,
    TaskPatch,
)
from opendms.server.rest_views import endpoint_body, endpoint_out, table_out, task_body, task_out
from opendms.server.shapes import DmsError, not_found

PREFIX = "/api/v1"
T = TypeVar("T")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
STATUS_OF_FAULT = {
    "ResourceNotFoundFault": (404, "not_found"),
    "ResourceAlreadyExistsFault": (409, "conflict"),
    "InvalidResourceStateFault": (409, "conflict"),
}
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "validation_error",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": code.replace("_", " ")}
    for status, code in CODES.items()
    if status != 405
}


class ApiError(OpenDMSError):
    """An error answered with ``status`` and the REST error shape."""

    def __init__(self, status: int, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.path = path


def error_response(
    status: int, message: str, path: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": CODES.get(status, "error"), "message": message, "path": path}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_fault(exc: DmsError) -> ApiError:
    status, _ = STATUS_OF_FAULT.get(exc.code, (400, "bad_request"))
    return ApiError(status, exc.message, exc.path)


class Rest:
    """The REST API's handlers over one :class:`DmsApi`."""

    def __init__(self, api: DmsApi, token: str, key: bytes) -> None:
        self.api = api
        self.token = token
        self.key = key

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; DMS faults as REST errors."""
        try:
            result: T = await anyio.to_thread.run_sync(self.api.guarded, fn, *args)
        except DmsError as exc:
            raise from_fault(exc) from None
        return result

    def authorize(self, request: Request, cookie: str | None) -> None:
        """The bearer token, or a console session (with CSRF for changes)."""
        header = request.headers.get("authorization")
        if header is not None:
            if token_matches(bearer(header), self.token):
                return
            raise ApiError(401, "the bearer token is wrong")
        if session_valid(cookie, self.key):
            given = request.headers.get("x-csrf-token")
            if request.method in SAFE_METHODS or csrf_valid(given, cookie, self.key):
                return
            raise ApiError(403, "a change needs the console session's X-CSRF-Token header")
        raise ApiError(401, "this API needs the server's token: Authorization: Bearer <token>")

    # --- query ------------------------------------------------------------------------

    def query(self, made: QueryIn) -> QueryOut:
        return server_query(self.api.resources, made)

    # --- endpoints --------------------------------------------------------------------

    def list_endpoints(self) -> list[EndpointOut]:
        return [endpoint_out(self.api, e) for e in self.api.resources.endpoints()]

    def get_endpoint(self, ident: str) -> EndpointOut:
        return endpoint_out(self.api, self.api.endpoint_named(ident))

    def create_endpoint(self, made: EndpointCreate) -> EndpointOut:
        self.api.create_endpoint(endpoint_body(made.model_dump(exclude_unset=True)))
        return self.get_endpoint(made.identifier)

    def modify_endpoint(self, ident: str, patch: EndpointPatch) -> EndpointOut:
        body = endpoint_body(patch.model_dump(exclude_unset=True))
        body["EndpointArn"] = self.api.endpoint_named(ident).arn
        self.api.modify_endpoint(body)
        return self.get_endpoint(ident)

    def delete_endpoint(self, ident: str) -> Deleted:
        self.api.delete_endpoint({"EndpointArn": self.api.endpoint_named(ident).arn})
        return Deleted(identifier=ident, deleted=True)

    def test_endpoint(self, ident: str) -> ConnectionOut:
        endpoint = self.api.endpoint_named(ident)
        conn = self.api.test_connection({"EndpointArn": endpoint.arn})["Connection"]
        return ConnectionOut(
            endpoint=ident, status=conn["Status"], message=conn.get("LastFailureMessage")
        )

    # --- tasks ------------------------------------------------------------------------

    def list_tasks(self) -> list[TaskOut]:
        return [task_out(self.api, t) for t in self.api.resources.tasks()]

    def get_task(self, ident: str) -> TaskOut:
        return task_out(self.api, self.api.task_named(ident))

    def create_task(self, made: TaskCreate) -> TaskOut:
        body = task_body(self.api, made.model_dump(exclude_unset=True))
        body["ReplicationTaskIdentifier"] = made.identifier
        body.setdefault("MigrationType", made.migration_type.value)
        self.api.create_replication_task(body)
        return self.get_task(made.identifier)

    def modify_task(self, ident: str, patch: TaskPatch) -> TaskOut:
        body = task_body(self.api, patch.model_dump(exclude_unset=True))
        body["ReplicationTaskArn"] = self.api.task_named(ident).arn
        self.api.modify_replication_task(body)
        return self.get_task(ident)

    def delete_task(self, ident: str) -> Deleted:
        self.api.delete_replication_task({"ReplicationTaskArn": self.api.task_named(ident).arn})
        return Deleted(identifier=ident, deleted=True)

    def start_task(self, ident: str, kind: str) -> TaskOut:
        task = self.api.task_named(ident)
        body = {"ReplicationTaskArn": task.arn, "StartReplicationTaskType": kind}
        self.api.start_replication_task(body)
        return self.get_task(ident)

    def stop_task(self, ident: str) -> TaskOut:
        self.api.stop_replication_task({"ReplicationTaskArn": self.api.task_named(ident).arn})
        return self.get_task(ident)

    def tables(self, ident: str) -> list[TableOut]:
        task = self.api.task_named(ident)
        return [table_out(s) for s in self.api.service.tables(task.identifier)]

    def errors(self, ident: str, table: str | None) -> list[DataErrorOut]:
        task = self.api.task_named(ident)
        found = self.api.service.errors(task.identifier, table=table)
        return [
            DataErrorOut(table=e.table, key=e.key, column=e.column, reason=e.reason) for e in found
        ]

    def logs(self, ident: str, query: LogQuery) -> list[LogLineOut]:
        from opendms.service.logs import read_task_log

        task = self.api.task_named(ident)
        found = read_task_log(
            self.api.service.state_path,
            task.identifier,
            level=query.level,
            search=query.search,
            component=query.component,
            limit=query.limit,
        )
        return [LogLineOut(**r.to_json()) for r in found]

    def assess(self, ident: str) -> AssessmentOut:
        task = self.api.task_named(ident)
        name = f"rest-{task.identifier}-{time.time_ns()}"
        body = {
            "ReplicationTaskArn": task.arn,
            "ServiceAccessRoleArn": "rest",
            "ResultLocationBucket": "local",
            "AssessmentRunName": name,
        }
        started = self.api.call("StartReplicationTaskAssessmentRun", body)
        run = started["ReplicationTaskAssessmentRun"]
        return AssessmentOut(
            name=name,
            status=run["Status"],
            created_at=run["ReplicationTaskAssessmentRunCreationDate"],
            failure=None,
            checks=[],
        )

    def assessment(self, ident: str) -> AssessmentOut:
        task = self.api.task_named(ident)
        run = self.api.assessments.latest_of(task.arn)
        if run is None:
            raise not_found(f"an assessment run of task {ident}")
        return AssessmentOut(
            name=run.name,
            status=run.status,
            created_at=run.created_at,
            failure=run.failure or None,
            checks=[CheckOut(**c) for c in run.checks],
        )

    def schedule_runs(self, ident: str, limit: int) -> list[ScheduleRunOut]:
        from opendms.server.schedules import schedule_runs

        task = self.api.task_named(ident)
        runs = schedule_runs(self.api.task_dir.parent, task.identifier, limit)
        return [
            ScheduleRunOut(due=r.due, at=r.at, outcome=r.outcome, reason=r.reason) for r in runs
        ]


def create_rest(api: DmsApi, token: str, key: bytes) -> FastAPI:
    """The REST API application (to mount at ``/api/v1``)."""
    rest = Rest(api, token, key)
    app = FastAPI(
        title="opendms",
        version=_version(),
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.rest = rest
    _handlers(app)
    app.include_router(_router(rest))
    return app


BEARER = HTTPBearer(auto_error=False, description="The server's token.")
COOKIE = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The console's session cookie."
)


def authorized(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    cookie: Annotated[str | None, Depends(COOKIE)],
) -> None:
    """Every route's dependency: the caller has the token or a console session."""
    rest: Rest = request.app.state.rest
    rest.authorize(request, cookie)


def _router(rest: Rest) -> APIRouter:
    router = APIRouter(dependencies=[Depends(authorized)], responses=ERRORS)
    _endpoint_routes(router, rest)
    _task_routes(router, rest)
    _task_records(router, rest)
    _task_actions(router, rest)
    _query_routes(router, rest)
    return router


def _query_routes(router: APIRouter, rest: Rest) -> None:
    @router.post("/query", tags=["query"], operation_id="query")
    async def query(made: QueryIn) -> QueryOut:
        """Run a federated query over the server's endpoints (by identifier) and the
        ``endpoints`` given; the answer (at most ``max_rows`` rows) and what each source
        was asked and read. ``explain``: what they would be asked, no rows read."""
        return await rest.run(rest.query, made)


def _endpoint_routes(router: APIRouter, rest: Rest) -> None:
    @router.get("/endpoints", tags=["endpoints"], operation_id="listEndpoints")
    async def list_endpoints() -> list[EndpointOut]:
        """Every endpoint."""
        return await rest.run(rest.list_endpoints)

    @router.post("/endpoints", status_code=201, tags=["endpoints"], operation_id="createEndpoint")
    async def create_endpoint(made: EndpointCreate) -> EndpointOut:
        """Create an endpoint."""
        return await rest.run(rest.create_endpoint, made)

    @router.get("/endpoints/{identifier}", tags=["endpoints"], operation_id="getEndpoint")
    async def get_endpoint(identifier: str) -> EndpointOut:
        """One endpoint."""
        return await rest.run(rest.get_endpoint, identifier)

    @router.patch("/endpoints/{identifier}", tags=["endpoints"], operation_id="modifyEndpoint")
    async def modify_endpoint(identifier: str, patch: EndpointPatch) -> EndpointOut:
        """Change an endpoint (the fields given)."""
        return await rest.run(rest.modify_endpoint, identifier, patch)

    @router.delete("/endpoints/{identifier}", tags=["endpoints"], operation_id="deleteEndpoint")
    async def delete_endpoint(identifier: str) -> Deleted:
        """Delete an endpoint no task uses."""
        return await rest.run(rest.delete_endpoint, identifier)

    @router.post("/endpoints/{identifier}/test", tags=["endpoints"], operation_id="testEndpoint")
    async def test_endpoint(identifier: str) -> ConnectionOut:
        """Test the endpoint's connection (also kept as the endpoint's ``connection``)."""
        return await rest.run(rest.test_endpoint, identifier)


def _task_routes(router: APIRouter, rest: Rest) -> None:
    @router.get("/tasks", tags=["tasks"], operation_id="listTasks")
    async def list_tasks() -> list[TaskOut]:
        """Every task with its status, progress and CDC latency."""
        return await rest.run(rest.list_tasks)

    @router.post("/tasks", status_code=201, tags=["tasks"], operation_id="createTask")
    async def create_task(made: TaskCreate) -> TaskOut:
        """Create a task (validated as the command line validates a task file)."""
        return await rest.run(rest.create_task, made)

    @router.get("/tasks/{identifier}", tags=["tasks"], operation_id="getTask")
    async def get_task(identifier: str) -> TaskOut:
        """One task."""
        return await rest.run(rest.get_task, identifier)

    @router.patch("/tasks/{identifier}", tags=["tasks"], operation_id="modifyTask")
    async def modify_task(identifier: str, patch: TaskPatch) -> TaskOut:
        """Change a task that is not running (the fields given)."""
        return await rest.run(rest.modify_task, identifier, patch)

    @router.delete("/tasks/{identifier}", tags=["tasks"], operation_id="deleteTask")
    async def delete_task(identifier: str) -> Deleted:
        """Delete a task that is not running."""
        return await rest.run(rest.delete_task, identifier)

    @router.get("/tasks/{identifier}/tables", tags=["tasks"], operation_id="taskTables")
    async def tables(identifier: str) -> list[TableOut]:
        """The task's table statistics."""
        return await rest.run(rest.tables, identifier)

    @router.get("/tasks/{identifier}/errors", tags=["tasks"], operation_id="taskErrors")
    async def errors(identifier: str, table: str | None = None) -> list[DataErrorOut]:
        """The rows the task's error policies skipped or logged (``table``:
        ``schema.table``, only that table's)."""
        return await rest.run(rest.errors, identifier, table)


def _task_records(router: APIRouter, rest: Rest) -> None:
    @router.get("/tasks/{identifier}/logs", tags=["tasks"], operation_id="taskLogs")
    async def logs(identifier: str, query: Annotated[LogQuery, Query()]) -> list[LogLineOut]:
        """The last records of the task's log, newest last (``level``: that level and
        more severe; ``search``: containing the text; ``component``: one component)."""
        return await rest.run(rest.logs, identifier, query)

    @router.post(
        "/tasks/{identifier}/assessment",
        status_code=202,
        tags=["tasks"],
        operation_id="startAssessment",
    )
    async def assess(identifier: str) -> AssessmentOut:
        """Start the task's premigration assessment (it runs in the background)."""
        return await rest.run(rest.assess, identifier)

    @router.get("/tasks/{identifier}/assessment", tags=["tasks"], operation_id="getAssessment")
    async def assessment(identifier: str) -> AssessmentOut:
        """The task's latest premigration assessment: its status and checks, each with
        what it found, the objects concerned and how to fix it."""
        return await rest.run(rest.assessment, identifier)

    @router.get(
        "/tasks/{identifier}/schedule-runs", tags=["tasks"], operation_id="taskScheduleRuns"
    )
    async def schedule_runs(
        identifier: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[ScheduleRunOut]:
        """The recorded due times of the task's schedule: started, skipped or failed."""
        return await rest.run(rest.schedule_runs, identifier, limit)


def _task_actions(router: APIRouter, rest: Rest) -> None:
    @router.post("/tasks/{identifier}/start", tags=["tasks"], operation_id="startTask")
    async def start(identifier: str) -> TaskOut:
        """Start the task's first run (a full-load task may start again)."""
        return await rest.run(rest.start_task, identifier, "start-replication")

    @router.post("/tasks/{identifier}/resume", tags=["tasks"], operation_id="resumeTask")
    async def resume(identifier: str) -> TaskOut:
        """Resume the task from its last applied position."""
        return await rest.run(rest.start_task, identifier, "resume-processing")

    @router.post("/tasks/{identifier}/reload", tags=["tasks"], operation_id="reloadTask")
    async def reload(identifier: str) -> TaskOut:
        """Start the task over: a new capture position and a full load."""
        return await rest.run(rest.start_task, identifier, "reload-target")

    @router.post("/tasks/{identifier}/stop", tags=["tasks"], operation_id="stopTask")
    async def stop(identifier: str) -> TaskOut:
        """Ask the task to stop: it answers ``stopping`` at once, ``stopped`` once its
        process has applied its batch and exited."""
        return await rest.run(rest.stop_task, identifier)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.message, exc.path, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where, *loc = first.get("loc") or ("body",)
        if where == "body":
            path: str | None = json_path(tuple(loc))
            message = f"{path}: {first.get('msg', 'invalid')}"
        else:
            path = None
            message = f"{where} parameter {'.'.join(map(str, loc))}: {first.get('msg')}"
        return error_response(422, message, path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), None, exc.headers)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opendms")
    except PackageNotFoundError:
        return "0"
