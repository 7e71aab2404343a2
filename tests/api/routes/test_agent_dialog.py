"""What the agent routes check for the dialog: the ``business_info`` keys the agent speaks
from, and a call's purpose (docs/api.md "What the agent is taught", "start-call")."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from helpers.api_fixtures import Headers, train_to
from helpers.store_fixtures import RecordingPlacer

Client = AsyncTestClient[Any]


async def test_business_info_the_agent_cannot_use_is_refused_naming_the_key(
    client: Client, tenant: Headers
) -> None:
    cases = [
        ({"ai_answer": "No, I'm a real person."}, "business_info.ai_answer"),
        ({"ai_disclosure": "Hi there!"}, "business_info.ai_disclosure"),
        ({"greeting": 42}, "business_info.greeting"),
    ]
    for info, field in cases:
        body = {"agent_name": "Alex", "business_info": info}
        response = await client.post("/api/agents/ai/setup/", json=body, headers=tenant)
        assert response.status_code == 400, (info, response.text)
        assert response.json()["field"] == field
    assert (await client.get("/api/agents/ai/", headers=tenant)).status_code == 404
    ok = {
        "agent_name": "Alex",
        "business_info": {"ai_disclosure": False, "value_proposition": "Half the bill."},
    }
    assert (await client.post("/api/agents/ai/setup/", json=ok, headers=tenant)).status_code == 201
    patched = await client.patch(
        "/api/agents/ai/",
        json={"business_info": {"ai_answer": "I'm not a robot."}},
        headers=tenant,
    )
    assert patched.status_code == 400
    assert patched.json()["field"] == "business_info.ai_answer"
    agent = (await client.get("/api/agents/ai/", headers=tenant)).json()
    assert agent["business_info"]["value_proposition"] == "Half the bill."


async def test_start_call_takes_a_purpose_and_refuses_a_misspelt_one(
    client: Client, tenant: Headers, placer: RecordingPlacer
) -> None:
    await train_to(client, tenant, 20)
    bad = {"phone_number": "+14155550123", "purpose": "customer_suport: the inverter"}
    response = await client.post("/api/agents/ai/start-call/", json=bad, headers=tenant)
    assert response.status_code == 400
    error = response.json()
    assert error["field"] == "purpose"
    assert "customer_support" in error["reason"]
    assert placer.requests == []  # nothing placed, nothing written
    calls = (await client.get("/api/calls/", headers=tenant)).json()
    assert calls["items"] == []
    good = {"phone_number": "+14155550123", "purpose": "customer_support: the inverter"}
    response = await client.post("/api/agents/ai/start-call/", json=good, headers=tenant)
    assert response.status_code == 201, response.text
    (request,) = placer.requests
    assert request.purpose == "customer_support: the inverter"
