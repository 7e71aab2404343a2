"""An ASGI app behind a real uvicorn on loopback, as ``callagent serve`` runs it, and Debian's
chromium for the browser tests (docs/dashboard.md, "Tests")."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from helpers.ports import free_tcp_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
"""Debian's chromium, which Playwright drives (no browser download)."""


@contextlib.asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[str]:
    """``app`` served on a free loopback port until the block ends; its ``http://`` base.
    ``config``: more ``uvicorn.Config`` options (the browser phone's WebSocket settings)."""
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
