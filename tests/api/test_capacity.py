"""The API's side of admission control and metrics (docs/telephony.md "Capacity",
docs/metrics.md): start-call refused with 503 while the node is full, ``GET /metrics`` only
with an API key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.telephony.admission import CallAdmission
from callagent.telephony.metrics import CallMetrics

from helpers.api_fixtures import Headers, train_to
from helpers.store_fixtures import FixedClock, RecordingPlacer

Client = AsyncTestClient[Any]
CALL = {"phone_number": "+14155550123", "ignore_working_hours": True}


@pytest.fixture
def admission() -> CallAdmission:
    return CallAdmission(1)


@pytest.fixture
def metrics(admission: CallAdmission) -> CallMetrics:
    metrics = CallMetrics()
    metrics.watch_admission(admission)
    return metrics


@pytest.fixture
async def node(
    database_url: str,
    placer: RecordingPlacer,
    clock: FixedClock,
    admission: CallAdmission,
    metrics: CallMetrics,
) -> AsyncIterator[Client]:
    """The app as ``serve`` builds it: with the node's admission and metrics."""
    state = ApiState(db=Database(database_url), placer=placer, clock=clock, admission=admission)
    app = create_app(lambda: {}, state, metrics=metrics)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_start_call_is_refused_while_the_node_is_full_and_writes_nothing(
    node: Client, tenant: Headers, admission: CallAdmission, placer: RecordingPlacer
) -> None:
    await train_to(node, tenant, 20)
    live = uuid.uuid4()
    assert admission.admit(live, "audiosocket")  # an inbound call fills the node
    response = await node.post("/api/agents/ai/start-call/", json=CALL, headers=tenant)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "at_capacity"
    assert "routing.max_active_calls = 1" in body["detail"]
    assert response.headers["retry-after"] == "30"
    assert placer.requests == []
    listed = await node.get("/api/calls/", headers=tenant)
    assert listed.json()["items"] == []
    # Once the call ended, start-call goes out, and its call holds the slot until it connects.
    admission.release(live)
    response = await node.post("/api/agents/ai/start-call/", json=CALL, headers=tenant)
    assert response.status_code == 201, response.text
    call_id = uuid.UUID(response.json()["call_id"])
    assert admission.reserved == 1
    assert not admission.admit(uuid.uuid4(), "audiosocket")
    assert admission.admit(call_id, "audiosocket")


async def test_a_placement_that_fails_gives_its_slot_back(
    node: Client, tenant: Headers, admission: CallAdmission, placer: RecordingPlacer
) -> None:
    await train_to(node, tenant, 20)
    placer.placed, placer.reason = False, "Asterisk's AMI is not connected"
    response = await node.post("/api/agents/ai/start-call/", json=CALL, headers=tenant)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "failed"
    assert (admission.active, admission.reserved) == (0, 0)


async def test_metrics_need_an_api_key(node: Client, tenant: Headers) -> None:
    assert (await node.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer not-a-key"}
    assert (await node.get("/metrics", headers=wrong)).status_code == 401
    response = await node.get("/metrics", headers=tenant)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"callagent_active_calls", "callagent_call_capacity", "callagent_calls_refused"} <= (
        names
    )
    # Not part of the REST API's OpenAPI document: it is the operator's, not the CRM's.
    schema = (await node.get("/schema/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_without_metrics_there_is_no_metrics_route(client: Client, tenant: Headers) -> None:
    assert (await client.get("/metrics", headers=tenant)).status_code == 404
