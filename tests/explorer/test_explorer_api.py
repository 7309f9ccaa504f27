"""The JSON API, driven through aiohttp's test client as the page drives it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pypaxos.explorer.scenarios import SCENARIOS
from pypaxos.explorer.server import make_app
from pypaxos.explorer.session import Session

Json = dict[str, Any]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = make_app(Session(SCENARIOS["normal"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def command(client: TestClient[Any, Any], line: str) -> Json:
    response = await client.post("/api/command", json={"command": line})
    body: Json = await response.json()
    assert response.status == 200, body
    return body


async def scenario(client: TestClient[Any, Any], name: str) -> Json:
    response = await client.post("/api/scenario", json={"name": name})
    assert response.status == 200
    body: Json = await response.json()
    return body


@pytest.mark.asyncio
async def test_state_describes_actors_messages_and_diagram(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/state")
    assert response.status == 200
    state: Json = await response.json()
    assert [a["name"] for a in state["actors"]] == ["P1", "P2", "A1", "A2", "A3", "L1"]
    assert [(m["index"], m["from"], m["to"], m["kind"]) for m in state["in_flight"]] == [
        (0, "P1", "A1", "Prepare"),
        (1, "P1", "A2", "Prepare"),
        (2, "P1", "A3", "Prepare"),
    ]
    p1 = state["actors"][0]
    assert p1["state"]["phase"] == "preparing" and p1["state"]["ballot"] == "0.4"
    assert p1["timers"] == [{"name": "phase", "due": 40}]
    assert state["step"] == 1 and state["chosen"] is None and state["violations"] == []
    assert state["transcript"][0]["command"] == "propose P1 x"
    assert state["diagram_svg"].startswith("<svg")


@pytest.mark.asyncio
async def test_dueling_reaches_a_decision_by_api_commands_alone(
    client: TestClient[Any, Any],
) -> None:
    state = await scenario(client, "dueling")
    assert state["scenario"]["name"] == "dueling" and state["chosen"] is None
    steps = 0
    while not state["quiescent"]:
        # Deliver the newest message each time (not the oldest) to vary the order a little.
        if state["in_flight"]:
            state = await command(client, f"deliver {len(state['in_flight']) - 1}")
        else:
            state = await command(client, "step")
        steps += 1
        assert steps < 200
    assert state["chosen"] in ("x", "y")
    assert state["decisions"] == {"L1": state["chosen"]}
    assert state["violations"] == []


@pytest.mark.asyncio
async def test_back_then_forward_gives_identical_states(client: TestClient[Any, Any]) -> None:
    forward_states = [await scenario(client, "dueling")]
    for _ in range(12):
        forward_states.append(await command(client, "step"))
    history = forward_states[-1]["history"]
    for k in range(12, 0, -1):
        state = await command(client, "back")
        # Everything but the recorded history (kept for Forward) is as it was at step k - 1.
        assert state == forward_states[k - 1] | {
            "history": history,
            "total": len(history),
            "next_command": history[state["step"]],
        }
    for k in range(1, 13):
        state = await command(client, "forward")
        assert state["history"] == history
        assert {**state, "history": None, "total": None, "next_command": None} == {
            **forward_states[k],
            "history": None,
            "total": None,
            "next_command": None,
        }
    assert state == forward_states[12]


@pytest.mark.asyncio
async def test_bug_scenario_shows_a_violation(client: TestClient[Any, Any]) -> None:
    state = await scenario(client, "bug-accept-below-promise")
    assert state["config"]["bugs"] == ["accept-below-promise"]
    while state["next_command"] is not None:
        state = await command(client, "forward")
    assert state["violations"] == ["more than one value chosen: ['x', 'y']"]
    assert state["chosen_values"] == ["x", "y"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"command": "deliver 42"}, "no message #42"),
        ({"command": "teleport A1"}, "cannot understand 'teleport A1'"),
        ({"command": "crash Z7"}, "no actor named 'Z7'"),
        ({"command": ""}, "empty command"),
        ({"cmd": "step"}, '{"command": "..."}'),
        (["step"], '{"command": "..."}'),
    ],
)
async def test_bad_commands_get_400_and_the_server_keeps_serving(
    client: TestClient[Any, Any], body: object, fragment: str
) -> None:
    before: Json = await (await client.get("/api/state")).json()
    response = await client.post("/api/command", json=body)
    assert response.status == 400
    assert fragment in (await response.json())["error"]
    after: Json = await (await client.get("/api/state")).json()
    assert after == before
    assert (await command(client, "deliver 0"))["step"] == before["step"] + 1


@pytest.mark.asyncio
async def test_malformed_json_unknown_scenario_and_wrong_content_type(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/api/command", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400 and "not valid JSON" in (await response.json())["error"]
    response = await client.post("/api/scenario", json={"name": "nope"})
    assert response.status == 400 and "dueling" in (await response.json())["error"]
    response = await client.post("/api/command", data="command=step")
    assert response.status == 415


@pytest.mark.asyncio
async def test_foreign_host_header_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/state", headers={"Host": "evil.example:8321"})
    assert response.status == 403


@pytest.mark.asyncio
async def test_page_assets_scenarios_and_svg_are_served(client: TestClient[Any, Any]) -> None:
    page = await client.get("/")
    assert page.status == 200 and "pypaxos explorer" in await page.text()
    for name in ("explorer.js", "explorer.css"):
        assert (await client.get(f"/static/{name}")).status == 200
    scenarios = await (await client.get("/api/scenarios")).json()
    assert [s["name"] for s in scenarios] == list(SCENARIOS)
    svg = await client.get("/api/diagram.svg")
    assert svg.content_type == "image/svg+xml" and (await svg.text()).startswith("<svg")


@pytest.mark.asyncio
async def test_partition_crash_and_timer_through_the_api(client: TestClient[Any, Any]) -> None:
    state = await command(client, "partition A3 L1")
    assert state["partition"] == ["A3", "L1"]
    assert [m["blocked"] for m in state["in_flight"]] == [False, False, True]
    state = await command(client, "crash A2")
    assert state["in_flight"][1]["to_down"] is True
    state = await command(client, "timer P1 phase")
    assert state["actors"][0]["state"]["phase"] == "backoff"
    state = await command(client, "heal")
    assert state["partition"] == []
