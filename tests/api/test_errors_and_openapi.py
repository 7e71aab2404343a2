"""Auth, error bodies, body limits, paths, and the OpenAPI document (docs/api.md, "Conventions")."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from callagent.store.db import Database
from callagent.store.services import clients

from .conftest import Headers

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


async def test_dashboard_is_404_without_agent(client: Client, tenant: Headers) -> None:
    for path in [
        "/api/dashboard/ai-agent/",
        "/api/dashboard/ai-agent/customers/",
        "/api/dashboard/ai-agent/callbacks/",
    ]:
        response = await client.get(path, headers=tenant)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


async def test_bad_bodies(client: Client, tenant: Headers) -> None:
    not_json = await client.post(
        "/api/customers/",
        content=b"{not json",
        headers={**tenant, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["field"] == "body"
    wrong_shape = await client.post("/api/customers/", json=[1, 2], headers=tenant)
    assert wrong_shape.status_code == 400
    wrong_type = await client.post(
        "/api/customers/",
        json={"phone_number": "+14155550123", "do_not_call": "maybe"},
        headers=tenant,
    )
    assert wrong_type.status_code == 400
    assert wrong_type.json()["field"] == "do_not_call"
    nested = await client.post("/api/agents/ai/setup/", json={"agent_name": "A"}, headers=tenant)
    assert nested.status_code == 201
    nested = await client.post(
        "/api/agents/ai/training/",
        json={"training_type": "product", "product_details": {"features": [1]}},
        headers=tenant,
    )
    assert nested.status_code == 400
    assert nested.json()["field"] == "product_details.features[0]"


async def test_body_size_limit(client: Client, tenant: Headers) -> None:
    big = {"phone_number": "+14155550123", "preferences": {"x": "y" * (2 * 1024 * 1024)}}
    response = await client.post("/api/customers/", json=big, headers=tenant)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert (await client.get("/api/customers/", headers=tenant)).json()["items"] == []


async def test_paths_work_with_and_without_trailing_slash(client: Client, tenant: Headers) -> None:
    assert (await client.get("/api/customers", headers=tenant)).status_code == 200
    assert (await client.get("/api/customers/", headers=tenant)).status_code == 200
    unknown = await client.get("/api/customers/not-a-uuid/", headers=tenant)
    assert unknown.status_code == 404
    assert (await client.get("/api/nothing-here/", headers=tenant)).status_code == 404


async def test_openapi_document_validates(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(json.loads(json.dumps(document)))
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    paths = document["paths"]
    for path in [
        "/api/agents/ai/setup",
        "/api/agents/ai/training",
        "/api/agents/ai/start-call",
        "/api/agents/ai/call-outcome",
        "/api/dashboard/ai-agent",
        "/api/dashboard/ai-agent/customers",
        "/api/dashboard/ai-agent/callbacks",
    ]:
        assert path in paths
    setup = paths["/api/agents/ai/setup"]["post"]
    assert {"201", "400", "401", "409"} <= set(setup["responses"])
    swagger = await client.get("/schema/swagger")
    assert swagger.status_code == 200
    assert "swagger" in swagger.text.lower()


async def test_health_still_works(client: Client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
