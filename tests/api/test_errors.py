"""Error bodies for bad input and oversized bodies (docs/api.md, "Conventions")."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from callagent.store.services import customers

from helpers.api_fixtures import Headers

Client = AsyncTestClient[Any]


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


async def test_an_unexpected_error_is_a_bare_500_logged_with_its_traceback(
    client: Client,
    tenant: Headers,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/callagent/secret.py")

    monkeypatch.setattr(customers, "list_customers", broken)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/api/customers/", headers=tenant)
    assert response.status_code == 500
    assert response.json() == {
        "status_code": 500,
        "error": "server_error",
        "detail": "internal server error",
    }
    assert "hunter2" not in response.text
    # The operator sees what happened, with the traceback, in the log.
    (record,) = [r for r in caplog.records if r.exc_info is not None]
    assert record.levelno == logging.ERROR
    assert "GET /api/customers" in record.getMessage()
    assert "RuntimeError: password=hunter2" in caplog.text
    assert "Traceback" in caplog.text
