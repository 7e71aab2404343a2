"""An agent's ``voice_model`` picks one of the voices installed on the node (docs/api.md, "Voices";
docs/models.md, "Voices"): by name or speaker, stored as the voice's name; empty is the default
voice; anything else is a 400 that lists the installed voices, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.modelfiles import installed_voices
from callagent.store.db import Database

from helpers.api_fixtures import Headers
from helpers.store_fixtures import FixedClock

MODELS = Path(__file__).resolve().parents[3] / "models"
INSTALLED = "en_US-joe-medium (joe, default), en_US-heart-hibari (heart)"


@pytest.fixture
async def voiced(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    """The API as ``callagent serve`` wires it: with the voices of the models folder (``ci``)."""
    voices = installed_voices(MODELS, "ci")
    state = ApiState(db=Database(database_url), clock=FixedClock(), voices=voices)
    async with AsyncTestClient(app=create_app(lambda: {}, state)) as client:
        yield client


async def test_setup_takes_an_installed_voice_by_name_or_speaker(
    voiced: AsyncTestClient[Any], new_tenant: Any
) -> None:
    for choice, stored in [
        ("heart", "en_US-heart-hibari"),
        ("en_US-joe-medium", "en_US-joe-medium"),
        ("Joe", "en_US-joe-medium"),
    ]:
        headers: Headers = await new_tenant(f"voice {choice}")
        response = await voiced.post(
            "/api/agents/ai/setup/",
            json={"agent_name": "Alex", "voice_model": choice},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        assert response.json()["voice_model"] == stored
    headers = await new_tenant("no voice chosen")
    response = await voiced.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["voice_model"] == ""  # the profile's default voice


async def test_a_voice_that_is_not_installed_is_a_400_listing_the_installed_ones(
    voiced: AsyncTestClient[Any], new_tenant: Any
) -> None:
    headers: Headers = await new_tenant("unknown voice")
    response = await voiced.post(
        "/api/agents/ai/setup/",
        json={"agent_name": "Alex", "voice_model": "en_US-lessac-medium"},
        headers=headers,
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["field"] == "voice_model"
    assert error["reason"] == (
        f"'en_US-lessac-medium' is not an installed voice; installed voices: {INSTALLED}"
    )
    assert (await voiced.get("/api/agents/ai/", headers=headers)).status_code == 404


async def test_patch_changes_the_voice_and_refuses_one_not_installed(
    voiced: AsyncTestClient[Any], new_tenant: Any
) -> None:
    headers: Headers = await new_tenant("voice change")
    created = await voiced.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex", "voice_model": "joe"}, headers=headers
    )
    assert created.status_code == 201, created.text
    refused = await voiced.patch(
        "/api/agents/ai/", json={"voice_model": "amy", "agent_name": "Sam"}, headers=headers
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "voice_model"
    assert INSTALLED in refused.json()["reason"]
    agent = (await voiced.get("/api/agents/ai/", headers=headers)).json()
    assert (agent["voice_model"], agent["agent_name"]) == ("en_US-joe-medium", "Alex")
    changed = await voiced.patch("/api/agents/ai/", json={"voice_model": "HEART"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["voice_model"] == "en_US-heart-hibari"
    default = await voiced.patch("/api/agents/ai/", json={"voice_model": ""}, headers=headers)
    assert default.json()["voice_model"] == ""
