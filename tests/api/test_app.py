"""The Litestar application: paths with and without the trailing slash, ``/health``, the OpenAPI
document, and the API docs page on a machine with no internet - every asset is served by the app,
and a real Chromium, cut off from every host but the app's, renders the operations."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from callagent.api.app import create_app
from callagent.api.state import ApiState

from helpers.api_fixtures import Headers
from helpers.served import CHROMIUM, serving

Client = AsyncTestClient[Any]


def _asset_urls(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)


async def test_swagger_page_loads_nothing_from_outside(client: Client) -> None:
    page = await client.get("/schema/swagger")
    assert page.status_code == 200
    urls = _asset_urls(page.text)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    for url in urls:
        assert url.startswith("/"), f"{url} is not local"
        assert not url.startswith("//"), f"{url} is not local"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


@pytest.fixture
async def served_api(api_state: ApiState) -> AsyncIterator[str]:
    """The app behind a real uvicorn on loopback, as `callagent serve` runs it."""
    async with serving(create_app(lambda: {}, api_state)) as base:
        yield base


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium")
async def test_swagger_renders_in_a_browser_without_internet(served_api: str) -> None:
    assert CHROMIUM is not None, "CI must run the browser test: install Debian's chromium"
    with tempfile.TemporaryDirectory() as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # Every host but the app's resolves to nothing: a CDN reference cannot load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{served_api}/schema/swagger",
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        dom, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    rendered = dom.decode(errors="replace")
    # Swagger UI builds these from the OpenAPI document in the browser: present only when its
    # JavaScript loaded and ran.
    assert "callagent REST API" in rendered
    assert "/api/agents/ai/start-call" in rendered
    assert 'class="opblock-summary-path"' in rendered or "opblock" in rendered


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


async def test_health_tells_an_anonymous_caller_only_ok(
    api_state: ApiState, tenant: Headers
) -> None:
    details = {"models": "ci", "active_calls": 3, "ami": "connected"}
    app = create_app(lambda: details, api_state)
    async with AsyncTestClient(app=app) as client:
        # A load balancer's probe learns that the service is up, and nothing about it.
        anonymous = await client.get("/health")
        assert anonymous.status_code == 200
        assert anonymous.json() == {"status": "ok"}
        # An operator with an API key sees the details.
        authenticated = await client.get("/health", headers=tenant)
        assert authenticated.json() == {"status": "ok", **details}
        refused = await client.get("/health", headers={"Authorization": "Bearer ca_wrong"})
        assert refused.status_code == 401
        assert "models" not in refused.text


async def test_starting_the_app_leaves_the_commands_logging_alone() -> None:
    # Litestar's default logging config replaces the root handlers at start-up; the call-id
    # filter installed by the command would then be gone from every line logged after it.
    import logging

    from callagent.api.app import create_app

    root = logging.getLogger()
    before = list(root.handlers)
    async with AsyncTestClient(app=create_app(lambda: {})) as client:
        assert (await client.get("/health")).status_code == 200
        assert root.handlers == before
