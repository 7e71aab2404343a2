"""``/api/webhooks/`` and ``/api/webhook-deliveries/`` (docs/webhooks.md, docs/api.md): the
client's endpoints, their secrets shown once, validation naming the field, the delivery log
and redelivery - through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from helpers.api_fixtures import Headers

Client = AsyncTestClient[Any]


async def test_an_endpoint_shows_its_secret_once_and_can_be_changed_and_deleted(
    client: Client, tenant: Headers
) -> None:
    created = await client.post(
        "/api/webhooks/",
        json={"url": "https://crm.example.org/hooks", "event_types": ["call.completed"]},
        headers=tenant,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert len(body["secret"]) > 40
    assert body["secret_hint"] == "…" + body["secret"][-4:]
    assert body["active"] is True
    shown = (await client.get(f"/api/webhooks/{body['id']}/", headers=tenant)).json()
    assert "secret" not in shown
    listed = (await client.get("/api/webhooks/", headers=tenant)).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    assert "secret" not in listed["items"][0]

    changed = await client.patch(
        f"/api/webhooks/{body['id']}/",
        json={"event_types": ["*", "call.started"], "active": False},
        headers=tenant,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["*"]
    assert changed.json()["active"] is False
    assert "secret" not in changed.json()
    rotated = await client.patch(
        f"/api/webhooks/{body['id']}/", json={"secret": "s" * 32}, headers=tenant
    )
    assert rotated.json()["secret"] == "s" * 32  # a secret just set is shown, this once
    assert (await client.delete(f"/api/webhooks/{body['id']}/", headers=tenant)).status_code == 204
    assert (await client.get(f"/api/webhooks/{body['id']}/", headers=tenant)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"url": "ftp://crm.example.org/", "event_types": ["*"]}, "url", "http"),
        ({"url": "http://169.254.169.254/latest", "event_types": ["*"]}, "url", "link-local"),
        ({"url": "http://[fe80::1]/hook", "event_types": ["*"]}, "url", "link-local"),
        ({"url": "http://metadata.google.internal/", "event_types": ["*"]}, "url", "metadata"),
        ({"url": "https://user:pw@crm.example.org/", "event_types": ["*"]}, "url", "credentials"),
        ({"url": "https:///nohost", "event_types": ["*"]}, "url", "host"),
        (
            {"url": "https://crm.example.org/", "event_types": ["call.started", "call.exploded"]},
            "event_types[1]",
            "unknown event type",
        ),
        ({"url": "https://crm.example.org/", "event_types": []}, "event_types", ""),
        (
            {"url": "https://crm.example.org/", "event_types": ["*"], "secret": "short"},
            "secret",
            "",
        ),
        ({"url": "https://crm.example.org/", "event_types": ["*"], "colour": 1}, "colour", ""),
    ],
)
async def test_a_bad_endpoint_is_a_400_naming_the_field(
    client: Client, tenant: Headers, body: dict[str, Any], field: str, reason: str
) -> None:
    response = await client.post("/api/webhooks/", json=body, headers=tenant)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert reason in response.json()["reason"]
    assert (await client.get("/api/webhooks/", headers=tenant)).json()["items"] == []


async def test_deliveries_are_listed_and_one_can_be_sent_again(
    client: Client, tenant: Headers
) -> None:
    endpoint = (
        await client.post(
            "/api/webhooks/",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["customer.updated"]},
            headers=tenant,
        )
    ).json()
    customer = (
        await client.post("/api/customers/", json={"phone_number": "+14155550100"}, headers=tenant)
    ).json()
    await client.patch(f"/api/customers/{customer['id']}/", json={"name": "Ada"}, headers=tenant)
    page = (
        await client.get(
            f"/api/webhook-deliveries/?endpoint_id={endpoint['id']}&status=pending", headers=tenant
        )
    ).json()
    assert [item["event_type"] for item in page["items"]] == ["customer.updated"]
    delivery = page["items"][0]
    assert delivery["attempts"] == 0
    detail = (await client.get(f"/api/webhook-deliveries/{delivery['id']}/", headers=tenant)).json()
    assert detail["payload"]["type"] == "customer.updated"
    assert detail["payload"]["id"] == delivery["event_id"]
    assert detail["payload"]["data"]["customer"]["name"] == "Ada"
    assert detail["payload"]["data"]["changed"] == ["name"]
    assert detail["attempt_log"] == []
    again = await client.post(
        f"/api/webhook-deliveries/{delivery['id']}/redeliver/", headers=tenant
    )
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    bad = await client.get("/api/webhook-deliveries/?status=lost", headers=tenant)
    assert bad.status_code == 400
    assert bad.json()["field"] == "status"
