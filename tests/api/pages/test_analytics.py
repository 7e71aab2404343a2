"""The analytics page through Litestar's test client, on both backends: each chart with its
figures from the client's calls (per day in the agent's zone, test calls only in the latency),
the learnt insights and the alerts; another client's calls never counted."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.models import AIAgent, CallSession
from callagent.store.states import CallOutcome, CallStatus, CallType

from helpers.api_fixtures import train_to
from helpers.dashboard_fixtures import Person, sign_in

Client = AsyncTestClient[Any]
UTC = dt.UTC


def _latency(*ms: float) -> dict[str, Any]:
    # The greeting's turn has no voice-to-voice figure (the call journal writes None).
    return {"turns": [{"voice_to_voice": None}] + [{"voice_to_voice": v} for v in ms]}


async def _calls(
    client: Client,
    db: Database,
    who: Person,
    rows: list[tuple[dt.datetime, CallType, CallOutcome | None, dict[str, Any]]],
    metrics: dict[str, Any] | None = None,
) -> None:
    """An agent, a customer and ``rows`` of calls written as the call runner and the
    analysis leave them."""
    await train_to(client, who.headers, 20)
    customer = await client.post(
        "/api/customers/", json={"phone_number": "+14155550141"}, headers=who.headers
    )
    assert customer.status_code == 201, customer.text
    async with db.write() as session:
        agent = await session.scalar(select(AIAgent).where(AIAgent.client_id == who.client_id))
        assert agent is not None
        for created_at, call_type, outcome, latency in rows:
            session.add(
                CallSession(
                    client_id=who.client_id,
                    agent_id=agent.id,
                    customer_id=uuid.UUID(customer.json()["id"]),
                    call_type=call_type,
                    phone_number="+14155550141",
                    status=CallStatus.COMPLETED,
                    outcome=outcome,
                    latency=latency,
                    created_at=created_at,
                )
            )
        if metrics is not None:
            agent.performance_metrics = metrics


LEARNT = {
    "satisfaction": {"sum": 4, "count": 2},
    "learning": {
        "calls": 24,
        "good": 12,
        "answers": {
            "a1": {
                "calls": 12,
                "good": 9,
                "objection": "too expensive",
                "text": "It pays for itself in eight years.",
            },
            "a2": {
                "calls": 12,
                "good": 3,
                "objection": "too expensive",
                "text": "We can offer <b>a discount</b>.",
            },
        },
        "hours": {"10": {"calls": 12, "good": 8}},
        "weekdays": {"tue": {"calls": 12, "good": 8}},
        "openers": {
            "Hello [CUSTOMER_NAME], this is Alex": {
                "calls": 12,
                "good": 7,
                "direction": "outbound",
            }
        },
    },
}


async def test_the_charts_show_the_clients_calls_per_day(
    client: Client, db: Database, new_person: Callable[[str], Awaitable[Person]]
) -> None:
    owner, other = await new_person("Acme Solar"), await new_person("Globex Roofs")
    # The test clock says Wednesday 2026-03-04 10:00 UTC; the agent's zone is UTC.
    await _calls(
        client,
        db,
        owner,
        [
            (dt.datetime(2026, 3, 3, 9, tzinfo=UTC), CallType.OUTBOUND, CallOutcome.CONVERTED,
             _latency(800, 1200)),
            (dt.datetime(2026, 3, 3, 11, tzinfo=UTC), CallType.OUTBOUND, CallOutcome.NO_ANSWER,
             {}),
            (dt.datetime(2026, 3, 4, 8, tzinfo=UTC), CallType.INBOUND, CallOutcome.INTERESTED,
             _latency(1000, 3000, 500)),
            # The browser phone's test call: its latency counts, the call does not.
            (dt.datetime(2026, 3, 4, 8, 30, tzinfo=UTC), CallType.TEST, None, _latency(700)),
            # Before the window of 7 days.
            (dt.datetime(2026, 2, 20, 9, tzinfo=UTC), CallType.OUTBOUND, CallOutcome.CONVERTED,
             _latency(9000)),
        ],
        metrics=LEARNT,
    )  # fmt: skip
    await _calls(
        client,
        db,
        other,
        [(dt.datetime(2026, 3, 4, 9, tzinfo=UTC), CallType.OUTBOUND,
          CallOutcome.DEMO_SCHEDULED, _latency(4321))],
    )  # fmt: skip
    await sign_in(client, owner)
    page = await client.get("/dashboard/analytics?days=7")
    assert page.status_code == 200
    html = page.text
    for chart in (
        "calls per day",
        "outcome mix",
        "conversion per day",
        "voice-to-voice latency per day",
    ):
        assert f'data-chart="{chart}"' in html, chart
    assert html.count('aria-hidden="true" focusable="false"') == 4
    # The words and the tables that stand for the charts.
    assert "3 calls in 7 days, 2 reached; the most on 3 Mar (2)." in html
    assert '<th scope="row">3 Mar</th><td>2</td><td>1</td>' in html
    assert '<th scope="row">4 Mar</th><td>1</td><td>1</td>' in html
    assert '<th scope="row">26 Feb</th><td>0</td><td>0</td>' in html
    assert "20 Feb" not in html
    assert '<th scope="row">Converted</th><td>1</td>' in html
    assert '<th scope="row">No answer</th><td>1</td>' in html
    assert "1 of 2 reached calls converted (50 %)." in html
    assert '<th scope="row">3 Mar</th><td>1</td><td>1</td><td>100 %</td>' in html
    # p50/p95 by linear interpolation: 3 Mar [800, 1200]; 4 Mar [500, 700, 1000, 3000].
    assert '<th scope="row">3 Mar</th><td>2</td><td>1000 ms</td><td>1180 ms</td>' in html
    assert '<th scope="row">4 Mar</th><td>4</td><td>850 ms</td><td>2700 ms</td>' in html
    assert "6 measured answers: p50 900 ms, p95 2550 ms" in html
    # Another client's call is nowhere.
    assert "Demo scheduled" not in html
    assert "4321" not in html
    # What the agent learnt, and the alerts.
    assert "It pays for itself in eight years." in html
    assert "We can offer &lt;b&gt;a discount&lt;/b&gt;." in html  # escaped, never markup
    assert "<td>10:00</td><td>12</td><td>8</td><td>67 %</td>" in html
    assert "Hello [CUSTOMER_NAME], this is Alex" in html
    assert "average customer satisfaction is 2.0/5" in html

    await sign_in(client, other)
    theirs = (await client.get("/dashboard/analytics?days=7")).text
    assert "1 call in 7 days, 1 reached" in theirs
    assert "Demo scheduled" in theirs
    assert "It pays for itself" not in theirs
    assert "1200 ms" not in theirs


async def test_without_an_agent_the_page_says_to_set_one_up(client: Client, person: Person) -> None:
    await sign_in(client, person)
    page = await client.get("/dashboard/analytics")
    assert page.status_code == 200
    assert "Set up your agent" in page.text
