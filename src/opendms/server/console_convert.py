"""The console's schema conversion page: a source endpoint's schema converted to a target
engine's DDL by :func:`opendms.convert.convert`, with its action-item report."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opendms.errors import OpenDMSError
from opendms.server.console import Console
from opendms.server.resources import Endpoint, endpoint_url
from opendms.server.shapes import masked

DATABASE_ENGINES = ("postgres", "aurora-postgresql", "mysql", "mariadb", "aurora", "sqlite")
_URGENCY = {"failed": 0, "manual": 1, "warning": 2, "converted": 3}


def target_engines() -> list[str]:
    """The engines conversion writes DDL for."""
    from opendms.convert.catalog import dialects

    return [d.name for d in dialects()]


def run_conversion(endpoint: Endpoint, engine: str, schemas: list[str]) -> dict[str, Any]:
    """Convert ``endpoint``'s schemas to ``engine``: the report's totals, its items (the
    ones needing action first) and the DDL; the endpoint's password masked throughout."""
    from opendms.convert import convert

    url, _ = endpoint_url(endpoint)
    result = convert(url, engine, schemas)
    items = sorted(result.report["items"], key=lambda i: _URGENCY.get(i["status"], 9))
    for item in items:
        item["messages"] = [masked(str(m), endpoint) for m in item["messages"]]
        item["qualified"] = f"{item['schema']}.{item['name']}" if item["schema"] else item["name"]
    return {
        "source_engine": result.report["source_engine"],
        "target_engine": result.report["target_engine"],
        "schemas": result.report["schemas"],
        "totals": result.report["totals"],
        "items": items,
        "ddl": masked(result.conversion.script(), endpoint),
    }


def convert_routes(c: Console) -> list[BaseRoute]:
    def sources() -> list[Endpoint]:
        return [e for e in c.api.resources.endpoints() if e.engine_name.lower() in DATABASE_ENGINES]

    async def page(request: Request) -> Response:
        return c.render(
            request, "convert.html", endpoints=sources(), engines=target_engines(), values={}
        )

    async def run(request: Request) -> Response:
        form = await request.form()
        values = {k: v for k, v in form.items() if k != "csrf" and isinstance(v, str)}
        chosen = next((e for e in sources() if e.identifier == values.get("endpoint")), None)
        engine = values.get("engine", "")
        schemas = [s.strip() for s in values.get("schemas", "").split(",") if s.strip()]
        report, error = None, ""
        if chosen is None:
            error = "Choose a source endpoint."
        else:
            try:
                report = await c.read(run_conversion, chosen, engine, schemas)
            except OpenDMSError as exc:
                error = masked(exc.message, chosen)
        return c.render(
            request,
            "convert.html",
            200 if report else 400,
            endpoints=sources(),
            engines=target_engines(),
            values=values,
            report=report,
            error=error,
        )

    g = c.guarded
    return [
        Route("/convert", g(page), methods=["GET"]),
        Route("/convert", g(run), methods=["POST"]),
    ]
