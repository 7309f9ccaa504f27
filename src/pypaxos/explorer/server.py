"""The explorer's web server: one static page and a small JSON API over one ``Session``.

Routes (all JSON unless noted)::

    GET  /                    the page (static/index.html), its script and stylesheet
    GET  /api/state           everything the page shows (see ``Session.state``)
    GET  /api/scenarios       [{name, title, explanation, bugs}]
    POST /api/command         {"command": "deliver 3"} -> state, or 400 {"error": ...}
    POST /api/scenario        {"name": "dueling"}       -> state, or 400 {"error": ...}
    GET  /api/diagram.svg     the sequence diagram so far (image/svg+xml)

The server binds to 127.0.0.1 only.  Because a page from any other site could still try to
reach it, requests must name a loopback host (against DNS rebinding) and POST bodies must be
``application/json`` (which a cross-site form cannot send without a CORS preflight).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from pypaxos.explorer.scenarios import SCENARIOS
from pypaxos.explorer.session import Session, scenario_list
from pypaxos.sim.script import ScriptError

SESSION: web.AppKey[Session] = web.AppKey("session", Session)
STATIC_FILES = {
    "index.html": "text/html",
    "explorer.js": "text/javascript",
    "explorer.css": "text/css",
}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.url.host not in LOOPBACK_HOSTS:
        return _error(403, f"the explorer only answers on loopback, not {request.host!r}")
    if request.method == "POST" and request.content_type != "application/json":
        return _error(415, "POST bodies must be JSON (Content-Type: application/json)")
    return await handler(request)


async def _json_body(request: web.Request, key: str) -> str:
    try:
        body: Any = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ScriptError("the request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get(key), str):
        raise ScriptError(f'expected a JSON object like {{"{key}": "..."}}')
    value: str = body[key]
    return value


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SESSION].state())


async def get_scenarios(request: web.Request) -> web.Response:
    return web.json_response(scenario_list())


async def post_command(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    try:
        session.command(await _json_body(request, "command"))
    except ScriptError as error:
        return _error(400, str(error))
    return web.json_response(session.state())


async def post_scenario(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    try:
        name = await _json_body(request, "name")
    except ScriptError as error:
        return _error(400, str(error))
    scenario = SCENARIOS.get(name)
    if scenario is None:
        return _error(400, f"no scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    session.load(scenario, session.extra_bugs)
    return web.json_response(session.state())


async def get_diagram(request: web.Request) -> web.Response:
    return web.Response(text=request.app[SESSION].diagram(), content_type="image/svg+xml")


def _static(name: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        text = resources.files("pypaxos.explorer").joinpath("static", name).read_text("utf-8")
        return web.Response(
            text=text, content_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    return serve


def make_app(session: Session) -> web.Application:
    """The explorer application around ``session`` (serve it with aiohttp's runners)."""
    app = web.Application(middlewares=[_guard])
    app[SESSION] = session
    app.router.add_get("/", _static("index.html"))
    for name in STATIC_FILES:
        app.router.add_get(f"/static/{name}", _static(name))
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/scenarios", get_scenarios)
    app.router.add_post("/api/command", post_command)
    app.router.add_post("/api/scenario", post_scenario)
    app.router.add_get("/api/diagram.svg", get_diagram)
    return app
