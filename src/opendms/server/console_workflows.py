"""The console's workflow pages: the state machines and executions the server keeps
(``/console/workflows``) and one execution with its history (``/console/workflows/NAME``)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opendms.errors import ConfigError
from opendms.server.console import PREFIX, Console
from opendms.workflows.store import WorkflowStore


def workflow_routes(c: Console) -> list[BaseRoute]:
    store = WorkflowStore(c.state / "state.db")

    def listing_data() -> dict[str, Any]:
        return {"machines": store.machines(), "executions": store.executions()[::-1]}

    async def listing(request: Request) -> Response:
        found = await anyio.to_thread.run_sync(listing_data)
        return c.render(request, "workflows.html", **found)

    def detail_data(name: str) -> dict[str, Any]:
        record = store.execution(name)
        events = [
            {
                **event,
                "detail": json.dumps(
                    {
                        k: v
                        for k, v in event.items()
                        if k not in ("id", "timestamp", "type", "state")
                    },
                    default=str,
                ),
            }
            for event in store.events(name)
        ]
        summary = record.summary()
        return {"record": record, "summary": json.dumps(summary, indent=2), "events": events}

    async def detail(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            found = await anyio.to_thread.run_sync(detail_data, name)
        except ConfigError:
            return c.redirect(f"{PREFIX}/workflows", ("error", f"No execution named {name}."))
        return c.render(request, "workflow.html", **found)

    return [
        Route("/workflows", c.guarded(listing), methods=["GET"]),
        Route("/workflows/{name}", c.guarded(detail), methods=["GET"]),
    ]
