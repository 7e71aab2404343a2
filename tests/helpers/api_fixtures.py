"""Fixtures shared by the API tests (tests/api, tests/integration): the real Litestar app on
a real database, once per backend, and the tenants that call it.

A conftest.py makes them available by naming them, as tests/api/conftest.py does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.services import clients

from helpers import store_fixtures
from helpers.store_fixtures import FixedClock, RecordingPlacer

# The shared database fixtures (one migrated database per backend).
backend = store_fixtures.backend
database_url = store_fixtures.database_url
db = store_fixtures.db

Headers = dict[str, str]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def placer() -> RecordingPlacer:
    return RecordingPlacer()


@pytest.fixture
def api_state(database_url: str, placer: RecordingPlacer, clock: FixedClock) -> ApiState:
    # The app gets its own Database: AsyncTestClient runs the app in another event loop, and
    # pooled connections belong to the loop that opened them. The app closes it on shutdown.
    return ApiState(db=Database(database_url), placer=placer, clock=clock)


@pytest.fixture
async def client(api_state: ApiState) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(lambda: {}, api_state)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
def new_tenant(db: Database) -> Callable[[str], Awaitable[Headers]]:
    """Make a client; its auth headers."""

    async def make(name: str = "tenant") -> Headers:
        created = await clients.create_client(db, name)
        return {"Authorization": f"Bearer {created.api_key}"}

    return make


@pytest.fixture
async def tenant(new_tenant: Callable[[str], Awaitable[Headers]]) -> Headers:
    return await new_tenant("Acme Solar")


SCRIPT = " ".join(["word"] * 200)  # 200 words: the whole script area (25 points)


async def train_to(client: AsyncTestClient[Any], headers: Headers, level: int) -> dict[str, Any]:
    """Set up an agent and train it to at least ``level`` (20, 45, 80 or 100)."""
    response = await client.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=headers
    )
    assert response.status_code == 201, response.text
    sessions: list[dict[str, Any]] = [{"training_type": "script", "training_content": SCRIPT}]
    if level > 25:
        sessions.append(
            {
                "training_type": "product",
                "training_content": " ".join(["w"] * 100),
                "product_details": {"features": ["a"], "pricing": "$9", "benefits": ["b"]},
            }
        )
    if level > 45:
        sessions += [
            {
                "training_type": "objections",
                "objection_responses": {f"objection {i}": "answer" for i in range(5)},
            },
            {"training_type": "techniques", "sales_techniques": list("abcde")},
        ]
    if level > 80:
        sessions += [
            {"training_type": "company", "training_content": " ".join(["w"] * 100)},
            {"training_type": "goals", "training_content": " ".join(["w"] * 50)},
        ]
    body: dict[str, Any] = {}
    for session in sessions:
        response = await client.post("/api/agents/ai/training/", json=session, headers=headers)
        assert response.status_code == 201, response.text
        body = response.json()
    assert body["training_level"] >= level
    return body
