"""The web console at ``/console``: server-rendered Jinja2 pages over the server's DMS
layer, plain JavaScript that polls small JSON routes every 2 s, no external resources.

Login: the user pastes the server's token; the console then keeps a signed session
cookie (HttpOnly, SameSite=Strict, Secure over https). Every other route needs it (pages
redirect to the login page, JSON routes answer 401) and every form POST carries the
session's CSRF token (403 without it). Changes go through the server's :class:`DmsApi`
under the app's lock; reads use a second DmsApi over the same stores, so a page
refreshing never waits for a task that takes long to stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from opendms.server.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    TOKEN_FILE,
    csrf_token,
    csrf_valid,
    load_or_create_key,
    load_or_create_token,
    make_session,
    session_valid,
    token_matches,
)
from opendms.server.dmsapi import DmsApi
from opendms.server.views import CachedTaskService

HERE = Path(__file__).parent
PREFIX = "/console"
LOGIN_COOKIE = "opendms_login"  # a pre-login session: the login form's CSRF token
FLASH_COOKIE = "opendms_flash"
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """The console's shared parts: secrets, templates, the DMS layer and its locks."""

    def __init__(self, api: DmsApi, state: Path, lock: anyio.Lock | None = None) -> None:
        self.api = api
        self.lock = lock or anyio.Lock()
        # reads: a service of their own over the same (thread-safe) state store; a second
        # StateStore in this process would open and close the state file, which drops
        # the SQLite locks of the first one (POSIX locks are per process)
        service = CachedTaskService(api.service.store)
        self.reader = DmsApi(api.resources, service, state, api.region)
        self.reader.connections = api.connections  # the last connection tests, shared
        self.reader.stopping = api.stopping  # a task shows "stopping" until its stop is done
        self.read_lock = anyio.Lock()
        self.state = state
        self.key = load_or_create_key(state)
        self.token, _ = load_or_create_token(state)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.flasher = URLSafeSerializer(self.key, salt="flash")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread under the app's lock (the DMS layer's calls)."""
        async with self.lock:
            return await anyio.to_thread.run_sync(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread over the console's reading DmsApi."""
        async with self.read_lock:
            return await anyio.to_thread.run_sync(fn, *args)

    # --- pages ------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        context.setdefault("csrf", csrf_token(session, self.key) if session else "")
        context["flash"] = self._flash_of(request)
        context["prefix"] = PREFIX
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        if context["flash"]:
            response.delete_cookie(FLASH_COOKIE, path=PREFIX)
        response.headers["Cache-Control"] = "no-store"
        return response

    def fragment(self, request: Request, name: str, **context: Any) -> str:
        """A template rendered to text (a part of a page, for the pages' polling)."""
        return self.templates.get_template(name).render(prefix=PREFIX, request=request, **context)

    def redirect(self, url: str, flash: tuple[str, str] | None = None) -> Response:
        """303 to ``url``, with a message (kind "ok" or "error") for the next page."""
        response = RedirectResponse(url, status_code=303)
        if flash is not None:
            value = self.flasher.dumps([flash[0], flash[1][:600]])
            response.set_cookie(FLASH_COOKIE, value, path=PREFIX, httponly=True, samesite="strict")
        return response

    def _flash_of(self, request: Request) -> dict[str, str] | None:
        try:
            kind, text = self.flasher.loads(request.cookies.get(FLASH_COOKIE, ""))
        except (BadSignature, ValueError):
            return None
        return {"kind": str(kind), "text": str(text)}

    # --- authentication ---------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the session: without one, pages redirect to the login page
        and JSON routes answer 401; a POST needs the session's CSRF token (403)."""

        async def guard(request: Request) -> Response:
            session = request.cookies.get(SESSION_COOKIE)
            if not session_valid(session, self.key):
                if request.url.path.endswith(".json"):
                    return JSONResponse({"error": "not logged in"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
            if request.method == "POST":
                form = await request.form()
                if not csrf_valid(_str(form.get("csrf")), session, self.key):
                    return forbidden()
            return await handler(request)

        return guard

    async def login_page(self, request: Request) -> Response:
        return self._login_form(request, "")

    def _login_form(self, request: Request, error: str, status: int = 200) -> Response:
        pre = request.cookies.get(LOGIN_COOKIE) or ""
        if not session_valid(pre, self.key, 3600):
            pre = make_session(self.key)
        response = self.render(
            request,
            "login.html",
            status,
            csrf=csrf_token(pre, self.key),
            token_file=str((self.state / TOKEN_FILE).resolve()),
            next=_safe_next(request.query_params.get("next", "")),
            error=error,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            pre,
            max_age=3600,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_valid(_str(form.get("csrf")), request.cookies.get(LOGIN_COOKIE), self.key):
            return forbidden()
        if not token_matches(_str(form.get("token")).strip(), self.token):
            return self._login_form(request, "That is not the server's token.", 401)
        response = RedirectResponse(_safe_next(_str(form.get("next"))), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            make_session(self.key),
            max_age=SESSION_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _safe_next(target: str) -> str:
    """Where to go after logging in: a console path, never another site."""
    ok = target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target
    return target if ok else f"{PREFIX}/tasks"


def forbidden() -> Response:
    return HTMLResponse(
        "<!doctype html><title>Forbidden</title><h1>Forbidden</h1>"
        "<p>The form's CSRF token is missing or wrong: reload the page and try again.</p>",
        status_code=403,
    )


def console_app(api: DmsApi, state: Path, lock: anyio.Lock | None = None) -> Starlette:
    """The console's app, to mount at ``/console``; ``lock``: the app's lock around
    calls that change tasks (the DMS API's own)."""
    from opendms.server.console_pages import page_routes

    console = Console(api, state, lock)
    g = console.guarded
    routes: list[BaseRoute] = [
        Route("/login", console.login_page, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", g(console.logout), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *page_routes(console),
    ]
    return Starlette(routes=routes)


def console_routes(api: DmsApi, state: Path, lock: anyio.Lock | None = None) -> list[BaseRoute]:
    """The routes to add to the server's app: the console at ``/console`` and ``GET /``
    redirecting there."""

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/tasks", status_code=307)

    return [Route("/", home, methods=["GET"]), Mount(PREFIX, app=console_app(api, state, lock))]
