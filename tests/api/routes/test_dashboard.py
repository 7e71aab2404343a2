"""``GET /api/dashboard/ai-agent/`` and its two lists (docs/api.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.models import AIAgent
from callagent.store.services import clients, learning
from callagent.store.services.learning import AnswerVariant, CallObservation

from helpers.api_fixtures import Headers, train_to
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]


async def test_dashboard_after_some_calls(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 45)
    outcomes = ["converted", "interested", "not_interested", "no_answer"]
    for index, outcome in enumerate(outcomes):
        call = (
            await client.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": f"+1415555010{index}"},
                headers=tenant,
            )
        ).json()
        await client.post(
            "/api/agents/ai/call-outcome/",
            json={
                "call_id": call["call_id"],
                "outcome": outcome,
                "customer_satisfaction": 2,
                "objections": ["price"] if index < 2 else [],
                "callback_requested": outcome == "interested",
                "callback_datetime": (clock.now + dt.timedelta(hours=1)).isoformat(),
            },
            headers=tenant,
        )
    await client.post("/api/customers/", json={"phone_number": "+14155550199"}, headers=tenant)
    clock.advance(hours=3)  # the callback is now overdue
    response = await client.get("/api/dashboard/ai-agent/", headers=tenant)
    assert response.status_code == 200, response.text
    board = response.json()
    assert board["agent"]["status"] == "learning"
    assert board["performance"]["calls_handled"] == 4
    assert board["performance"]["successful_conversions"] == 1
    assert board["performance"]["conversion_rate"] == 0.25
    assert board["performance"]["average_satisfaction"] == 2
    assert board["performance"]["outcomes"]["no_answer"] == 1
    assert len(board["recent_calls"]) == 4
    assert board["customer_statistics"] == {
        "total": 5,
        "cold": 3,  # not interested, no answer, and the one never called
        "warm": 1,
        "hot": 0,
        "converted": 1,
        "do_not_call": 0,
    }
    callbacks = board["scheduled_callbacks"]
    assert (callbacks["scheduled"], callbacks["overdue"], callbacks["overdue_capped"]) == (
        1,
        1,
        False,
    )
    assert callbacks["upcoming"][0]["overdue"] is True
    training = board["training_status"]
    assert training["training_level"] == board["agent"]["training_level"]
    assert training["sessions"] == 2
    assert training["next_steps"]
    kinds = {insight["kind"] for insight in board["learning_insights"]}
    assert {"objection", "untrained_objection", "outcomes"} <= kinds
    codes = {alert["code"] for alert in board["alerts"]}
    assert codes == {"overdue_callbacks", "low_satisfaction"}
    actions = {action["action"] for action in board["quick_actions"]}
    assert {"train", "start_call", "overdue_callbacks"} <= actions

    hot = await client.get(
        "/api/dashboard/ai-agent/customers/",
        params={"interest_level": "converted", "converted": "true"},
        headers=tenant,
    )
    assert [c["phone_number"] for c in hot.json()["items"]] == ["+14155550100"]
    overdue = await client.get(
        "/api/dashboard/ai-agent/callbacks/",
        params={"status": "scheduled", "overdue": "true"},
        headers=tenant,
    )
    assert [c["phone_number"] for c in overdue.json()["items"]] == ["+14155550101"]
    upcoming = await client.get(
        "/api/dashboard/ai-agent/callbacks/", params={"overdue": "false"}, headers=tenant
    )
    assert upcoming.json()["items"] == []
    conflict = await client.get(
        "/api/dashboard/ai-agent/callbacks/",
        params={"status": "completed", "overdue": "true"},
        headers=tenant,
    )
    assert conflict.status_code == 400
    assert conflict.json()["field"] == "overdue"


async def test_new_agent_dashboard(client: Client, tenant: Headers) -> None:
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    board = (await client.get("/api/dashboard/ai-agent/", headers=tenant)).json()
    assert board["agent"]["training_level"] == 0
    assert board["recent_calls"] == []
    assert board["customer_statistics"]["total"] == 0
    assert [alert["code"] for alert in board["alerts"]] == ["agent_not_ready"]
    assert "start_call" not in {action["action"] for action in board["quick_actions"]}


async def test_dashboard_is_404_without_agent(client: Client, tenant: Headers) -> None:
    for path in [
        "/api/dashboard/ai-agent/",
        "/api/dashboard/ai-agent/customers/",
        "/api/dashboard/ai-agent/callbacks/",
    ]:
        response = await client.get(path, headers=tenant)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


async def test_dashboard_insights_come_from_the_learning_counts(
    client: Client, db: Database
) -> None:
    created = await clients.create_client(db, "Learning Solar")
    headers = {"Authorization": f"Bearer {created.api_key}"}
    await train_to(client, headers, 20)
    finance = AnswerVariant("too expensive", "Most customers finance the system.")
    starter = AnswerVariant("too expensive", "We can start with a smaller package.")
    # What analysed calls counted (docs/learning.md): the finance answer 9 good of 12 calls at
    # 14:00 on Tuesdays, the starter package 2 of 12 at 09:00 on Mondays; one opener.
    calls: list[tuple[CallObservation, bool]] = []
    for variant, hour, weekday, good in ((finance, 14, "tue", 9), (starter, 9, "mon", 2)):
        seen = CallObservation(
            answers=(variant,), opener="Hi, this is Alex.", hour=hour, weekday=weekday
        )
        calls += [(seen, True)] * good + [(seen, False)] * (12 - good)
    async with db.write() as session:
        agent = await session.scalar(select(AIAgent).where(AIAgent.client_id == created.client_id))
        assert agent is not None
        for seen, good in calls:
            agent.performance_metrics = learning.count(agent.performance_metrics, seen, good)

    board = (await client.get("/api/dashboard/ai-agent/", headers=headers)).json()
    insights = {insight["kind"]: insight for insight in board["learning_insights"]}
    assert insights["learning"]["data"]["calls"] == 24
    assert insights["learning"]["data"]["learning"] is False  # the agent is not optimizing
    best = insights["best_answer"]
    assert best["data"]["objection"] == "too expensive"
    assert [(a["text"], a["calls"], a["good"]) for a in best["data"]["answers"]] == [
        (finance.text, 12, 9),
        (starter.text, 12, 2),
    ]
    assert "9 of 12 calls (75%)" in best["message"]
    times = insights["best_call_time"]["data"]
    assert [(h["hour"], h["good"]) for h in times["hours"]] == [(14, 9), (9, 2)]
    assert [d["weekday"] for d in times["weekdays"]] == ["tue", "mon"]
    assert "14:00-15:00" in insights["best_call_time"]["message"]
    [opener] = insights["best_opener"]["data"]["openers"]
    assert (opener["opener"], opener["calls"], opener["good"]) == ("Hi, this is Alex.", 24, 11)
