"""The explorer's web server: one static page and a small JSON API over its sessions.

Routes (all JSON unless noted)::

    GET  /                    the page (static/index.html), its script and stylesheet
    POST /api/session         {} -> {"session": id, "state": state}: a session of one's own
    GET  /api/state           everything the page shows (see ``Session.state``)
    GET  /api/scenarios       [{name, title, explanation, bugs}]
    POST /api/command         {"command": "deliver 3"} -> state, or 400 {"error": ...}
    POST /api/scenario        {"name": "dueling"}       -> state, or 400 {"error": ...}
    GET  /api/diagram.svg     the sequence diagram so far (image/svg+xml)

Every ``/api`` route but the first takes ``?session=ID``.  The page asks for a session of its
own when it opens and keeps the id in its URL (``#s=ID``), so each browser tab explores on its
own, and a reload or a copied URL comes back to the same one.  A new session starts as the
server's first did (a counterexample opens at its failing step again).  Without ``session``
a request uses the server's first session (the one ``make_app`` was given: scripts and tests
use it); an unknown id is a 404.  At most ``SESSIONS_MAX`` sessions are kept; the one used
least recently goes first.

The server binds to 127.0.0.1 only.  Because a page from any other site could still try to
reach it, requests must name a loopback host (against DNS rebinding) and POST bodies must be
``application/json`` (which a cross-site form cannot send without a CORS preflight).
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from pypaxos.explorer.scenarios import SCENARIOS, Scenario
from pypaxos.explorer.session import Session, scenario_list
from pypaxos.sim.script import ScriptError

SESSIONS_MAX = 64


class Sessions:
    """The server's sessions by id: the first one, and one per browser tab (bounded, LRU)."""

    def __init__(self, first: Session, limit: int = SESSIONS_MAX) -> None:
        self.first = first
        self.limit = limit
        self.opening = first.scenario, first.extra_bugs
        # The built-in scenarios, and the first session's own one if it is not among them (a
        # counterexample): every tab can go back to it from the scenario list.
        own = {} if first.scenario.name in SCENARIOS else {first.scenario.name: first.scenario}
        self.scenarios: dict[str, Scenario] = own | SCENARIOS
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def create(self) -> tuple[str, Session]:
        """A new session, as the first one was when the server started."""
        session_id = secrets.token_urlsafe(9)
        session = Session(*self.opening)
        self._by_id[session_id] = session
        while len(self._by_id) > self.limit:
            self._by_id.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if session_id is None:
            return self.first
        session = self._by_id.get(session_id)
        if session is not None:
            self._by_id.move_to_end(session_id)
        return session

    def __len__(self) -> int:
        return len(self._by_id)


SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
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


def _session(request: web.Request) -> Session:
    """The session a request names with ``?session=ID`` (the first one if it names none)."""
    session_id = request.query.get("session")
    session = request.app[SESSIONS].get(session_id)
    if session is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no session {session_id!r}: reload the page"}),
            content_type="application/json",
        )
    return session


async def post_session(request: web.Request) -> web.Response:
    session_id, session = request.app[SESSIONS].create()
    return web.json_response({"session": session_id, "state": session.state()})


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(_session(request).state())


async def get_scenarios(request: web.Request) -> web.Response:
    return web.json_response(scenario_list(request.app[SESSIONS].scenarios))


async def post_command(request: web.Request) -> web.Response:
    session = _session(request)
    try:
        session.command(await _json_body(request, "command"))
    except ScriptError as error:
        return _error(400, str(error))
    return web.json_response(session.state())


async def post_scenario(request: web.Request) -> web.Response:
    session = _session(request)
    try:
        name = await _json_body(request, "name")
    except ScriptError as error:
        return _error(400, str(error))
    scenarios = request.app[SESSIONS].scenarios
    scenario = scenarios.get(name)
    if scenario is None:
        return _error(400, f"no scenario {name!r}; scenarios: {', '.join(scenarios)}")
    session.load(scenario, session.extra_bugs)
    return web.json_response(session.state())


async def get_diagram(request: web.Request) -> web.Response:
    return web.Response(text=_session(request).diagram(), content_type="image/svg+xml")


def _static(name: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        text = resources.files("pypaxos.explorer").joinpath("static", name).read_text("utf-8")
        return web.Response(
            text=text, content_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    return serve


def make_app(session: Session) -> web.Application:
    """The explorer application; each new tab starts as ``session`` did (see module doc)."""
    app = web.Application(middlewares=[_guard])
    app[SESSIONS] = Sessions(session)
    app.router.add_get("/", _static("index.html"))
    for name in STATIC_FILES:
        app.router.add_get(f"/static/{name}", _static(name))
    app.router.add_post("/api/session", post_session)
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/scenarios", get_scenarios)
    app.router.add_post("/api/command", post_command)
    app.router.add_post("/api/scenario", post_scenario)
    app.router.add_get("/api/diagram.svg", get_diagram)
    return app
