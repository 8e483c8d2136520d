"""Python functions served as HTTP calls (``opendms serve --function NAME=module:fn``):
the opendms counterpart of Lambda functions behind an API Gateway stage.

``GET`` or ``POST /functions/NAME`` calls the function with one dict, the event: the
query parameters (one value each) and, for a POST, the fields of a JSON object body. Its
return value is the JSON answer; an exception is a 500 answer naming it as Lambda does
(``errorType``, ``errorMessage``). The calls need the server's bearer token unless the
server was started with ``--public-functions``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opendms.errors import ConfigError

Function = Callable[[dict[str, Any]], Any]
Guard = Callable[
    [Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]
]


def load_function(name: str, path: str) -> Function:
    """``module:function`` imported now (a clear error naming the option if it is not)."""
    module, sep, attr = path.removeprefix("python:").partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"--function {name}={path}: expected NAME=module:function")
    try:
        found: Any = importlib.import_module(module)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--function {name}={path}: cannot import it: {exc}") from None
    if not callable(found):
        raise ConfigError(f"--function {name}={path}: not a function")
    return found  # type: ignore[no-any-return]


def function_routes(functions: Mapping[str, str], guard: Guard) -> list[Route]:
    """``/functions/{name}`` for the functions given as name -> ``module:function``."""
    loaded = {name: load_function(name, path) for name, path in functions.items()}

    async def call(request: Request) -> Response:
        name = request.path_params["name"]
        function = loaded.get(name)
        if function is None:
            return JSONResponse({"message": f"no function named {name!r}"}, status_code=404)
        event: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                return JSONResponse({"message": f"the body is not JSON: {exc.msg}"}, 400)
            if not isinstance(body, dict):
                return JSONResponse({"message": "the body must be a JSON object"}, 400)
            event.update(body)
        try:
            out = await anyio.to_thread.run_sync(function, event)
        except Exception as exc:  # the function's own failure, as Lambda reports it
            answer = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return JSONResponse(answer, status_code=500)
        return Response(json.dumps(out, default=str), media_type="application/json")

    return [Route("/functions/{name}", guard(call), methods=["GET", "POST"])]
