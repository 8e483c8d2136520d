"""The console's Query page (``/console/query``): a federated query over the server's
endpoints (by identifier), its answer as a table and what each source was asked."""

from __future__ import annotations

import json

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opendms.errors import OpenDMSError
from opendms.server.console import Console
from opendms.server.querying import server_query
from opendms.server.rest_models import QueryIn

MAX_ROWS = 500


def query_routes(c: Console) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        identifiers = [e.identifier for e in c.api.resources.endpoints()]
        return c.render(request, "query.html", sql="", answer=None, error="", names=identifiers)

    async def run(request: Request) -> Response:
        form = await request.form()
        sql = str(form.get("sql") or "").strip()
        identifiers = [e.identifier for e in c.api.resources.endpoints()]
        made = QueryIn(sql=sql or " ", max_rows=MAX_ROWS, explain=form.get("explain") == "1")
        try:
            answer = await anyio.to_thread.run_sync(server_query, c.api.resources, made)
        except OpenDMSError as exc:
            text = c.api.scrub(str(exc))  # passwords masked
            return c.render(
                request, "query.html", 400, sql=sql, answer=None, error=text, names=identifiers
            )
        cells = [[_cell(v) for v in row] for row in answer.rows]
        return c.render(
            request, "query.html", sql=sql, answer=answer, cells=cells, error="", names=identifiers
        )

    return [
        Route("/query", c.guarded(page), methods=["GET"]),
        Route("/query", c.guarded(run), methods=["POST"]),
    ]


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value)
