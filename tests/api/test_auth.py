"""Bearer API keys (docs/api.md, "Conventions"): a key authenticates until it is revoked, and
anything else is a 401."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from callagent.store.db import Database
from callagent.store.services import clients

Client = AsyncTestClient[Any]


async def test_api_keys_authenticate_and_revoke(client: Client, db: Database) -> None:
    created = await clients.create_client(db, "Keyed")
    headers = {"Authorization": f"Bearer {created.api_key}"}
    assert (await client.get("/api/customers/", headers=headers)).status_code == 200
    second = await clients.create_api_key(db, created.client_id)
    keys = await clients.list_api_keys(db, created.client_id)
    assert len(keys) == 2
    assert all(created.api_key not in str(key) for key in keys)
    await clients.revoke_api_key(db, keys[0].id)
    refused = await client.get("/api/customers/", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    still = await client.get("/api/customers/", headers={"Authorization": f"Bearer {second}"})
    assert still.status_code == 200


async def test_missing_or_bad_keys_are_401(client: Client) -> None:
    for headers in [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer ca_not-a-real-key"},
        {"Authorization": "Bearer something-else"},
    ]:
        response = await client.get("/api/dashboard/ai-agent/", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "unauthorized"


async def test_the_key_is_checked_before_the_body_is_read(client: Client) -> None:
    # Without a valid key nothing about the body matters: not its syntax, not its size.
    bodies = [b"{not json", b"[" * 100_000, b'{"x": "' + b"y" * (2 * 1024 * 1024) + b'"}']
    for headers in [{}, {"Authorization": "Bearer ca_not-a-real-key"}]:
        for body in bodies:
            response = await client.post(
                "/api/customers/",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 401, (headers, body[:20], response.text)
            assert response.json()["error"] == "unauthorized"
        imported = await client.post(
            "/api/customers/import/", content=b"\xff" * (6 * 1024 * 1024), headers=headers
        )
        assert imported.status_code == 401
