"""What every JSON body goes through before a route sees it (docs/api.md, "Conventions"):
a bound on how deeply it nests, and no NUL characters in any text."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from callagent.api.request import MAX_JSON_DEPTH

from helpers.api_fixtures import Headers

Client = AsyncTestClient[Any]


def nested(depth: int) -> Any:
    """A value ``depth`` containers deep: {"a": {"a": ... {} ...}}."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_json_nested_too_deep_is_a_400(client: Client, tenant: Headers) -> None:
    # The body is one level, business_info another: this is as deep as a body may go.
    deepest = {"agent_name": "A", "business_info": nested(MAX_JSON_DEPTH - 1)}
    too_deep = {"agent_name": "A", "business_info": nested(MAX_JSON_DEPTH)}
    response = await client.post("/api/agents/ai/setup/", json=too_deep, headers=tenant)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["field"].startswith("business_info.a.a")
    assert f"deeper than {MAX_JSON_DEPTH}" in body["reason"]
    assert (await client.get("/api/agents/ai/", headers=tenant)).status_code == 404
    # Nesting far beyond what the JSON decoder itself can take is the same 400, not a crash.
    for opening in (b"[", b'{"a":'):
        response = await client.post(
            "/api/agents/ai/setup/",
            content=opening * 100_000,
            headers={**tenant, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "body"
    response = await client.post("/api/agents/ai/setup/", json=deepest, headers=tenant)
    assert response.status_code == 201, response.text


async def test_a_nul_character_in_any_text_is_a_400_naming_the_field(
    client: Client, tenant: Headers
) -> None:
    # PostgreSQL refuses U+0000 in text and jsonb: without this check these are 500s there.
    phone = {"phone_number": "+14155550123"}
    for body, field in [
        ({**phone, "name": "Bo\x00b"}, "name"),
        ({**phone, "preferences": {"a": ["x", "y\x00"]}}, "preferences.a[1]"),
        ({**phone, "preferences": {"k\x00": 1}}, "preferences.k\\u0000"),
    ]:
        response = await client.post("/api/customers/", json=body, headers=tenant)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field
        assert "NUL" in response.json()["reason"]
    assert (await client.get("/api/customers/", headers=tenant)).json()["items"] == []
    await client.post("/api/agents/ai/setup/", json={"agent_name": "A"}, headers=tenant)
    response = await client.post(
        "/api/agents/ai/training/",
        json={"training_type": "product", "product_details": {"features": ["fast\x00"]}},
        headers=tenant,
    )
    assert response.status_code == 400
    assert response.json()["field"] == "product_details.features[0]"
    response = await client.patch("/api/agents/ai/", json={"agent_name": "\x00"}, headers=tenant)
    assert response.status_code == 400
    assert response.json()["field"] == "agent_name"
    assert (await client.get("/api/agents/ai/", headers=tenant)).json()["agent_name"] == "A"
