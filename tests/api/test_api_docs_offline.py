"""The API docs page works on a machine with no internet: every asset is served by the app, and
a real Chromium, cut off from every host but the app's, renders the operations."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState

Client = AsyncTestClient[Any]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served_api(api_state: ApiState) -> AsyncIterator[str]:
    """The app behind a real uvicorn on loopback, as `callagent serve` runs it."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(lambda: {}, api_state), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            # uvicorn offers no event to wait on.
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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
