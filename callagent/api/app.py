"""The HTTP side of callagent. For now: the health endpoint of the embedded mode.

The REST API of issue #3 grows here; this module stays the place where the Litestar
application is assembled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar, get


def create_app(status: Callable[[], dict[str, Any]]) -> Litestar:
    """A Litestar app whose ``GET /health`` reports ``status()``."""

    @get("/health", sync_to_thread=False)
    def health() -> dict[str, Any]:
        return {"status": "ok", **status()}

    return Litestar(route_handlers=[health])
