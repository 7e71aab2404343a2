"""The dashboard's routes through Litestar's test client, on both backends: login, logout,
CSRF, every page with data, and one client's user never seeing another client's rows."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.models import CallSession
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state

from helpers.api_fixtures import train_to
from helpers.dashboard_fixtures import Person, csrf_of, sign_in

Client = AsyncTestClient[Any]
PAGES = [
    "/dashboard/",
    "/dashboard/agent",
    "/dashboard/training",
    "/dashboard/calls",
    "/dashboard/customers",
    "/dashboard/callbacks",
]


async def _with_data(client: Client, who: Person, name: str) -> dict[str, str]:
    """Give ``who``'s client an agent, training, a customer, a call and a callback through the
    REST API; the ids."""
    await train_to(client, who.headers, 20)
    customer = await client.post(
        "/api/customers/",
        json={"phone_number": "+14155550123", "name": f"{name} Customer", "company": name},
        headers=who.headers,
    )
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    call = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": "+14155550123", "ignore_working_hours": True},
        headers=who.headers,
    )
    assert call.status_code == 201, call.text
    callback = await client.post(
        "/api/callbacks/",
        json={
            "customer_id": customer_id,
            "scheduled_at": "2026-03-05T15:00:00Z",
            "reason": f"{name} wants a demo",
        },
        headers=who.headers,
    )
    assert callback.status_code == 201, callback.text
    return {
        "customer": customer_id,
        "call": call.json()["call_id"],
        "callback": callback.json()["id"],
    }


async def test_pages_need_a_login_and_open_after_one(client: Client, person: Person) -> None:
    for page in PAGES:
        response = await client.get(page, follow_redirects=False)
        assert response.status_code == 303, page
        assert response.headers["location"] == "/dashboard/login"
    await sign_in(client, person)
    for page in PAGES:
        response = await client.get(page)
        assert response.status_code == 200, page
        assert person.email in response.text


async def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_pages(
    client: Client, person: Person
) -> None:
    form = await client.get("/dashboard/login")
    secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
    assert secret
    response = await client.post(
        "/dashboard/login",
        data={"email": person.email, "password": person.password, "login_secret": secret[1]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("callagent_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would not come back


async def test_a_wrong_password_or_unknown_email_is_one_message(
    client: Client, person: Person
) -> None:
    for email, password in [(person.email, "wrong password!"), ("nobody@x.example", "whatever1")]:
        form = await client.get("/dashboard/login")
        secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
        assert secret
        response = await client.post(
            "/dashboard/login",
            data={"email": email, "password": password, "login_secret": secret[1]},
        )
        assert response.status_code == 401
        assert "Wrong e-mail or password." in response.text
    assert (await client.get("/dashboard/", follow_redirects=False)).status_code == 303


async def test_failed_sign_ins_are_throttled(client: Client, person: Person) -> None:
    statuses = []
    for _ in range(6):
        form = await client.get("/dashboard/login")
        secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
        assert secret
        response = await client.post(
            "/dashboard/login",
            data={"email": person.email, "password": "not it at all", "login_secret": secret[1]},
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    # Even the right password waits now.
    form = await client.get("/dashboard/login")
    secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
    assert secret
    response = await client.post(
        "/dashboard/login",
        data={"email": person.email, "password": person.password, "login_secret": secret[1]},
    )
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.text


async def test_a_login_post_without_its_form_secret_is_refused(
    client: Client, person: Person
) -> None:
    response = await client.post(
        "/dashboard/login", data={"email": person.email, "password": person.password}
    )
    assert response.status_code == 403
    assert (await client.get("/dashboard/", follow_redirects=False)).status_code == 303


async def test_a_form_without_the_csrf_token_changes_nothing(
    client: Client, person: Person
) -> None:
    csrf = await sign_in(client, person)
    refused = await client.post("/dashboard/agent", data={"agent_name": "Mallory"})
    assert refused.status_code == 403
    assert "Nothing was changed" in refused.text
    wrong = await client.post(
        "/dashboard/agent", data={"agent_name": "Mallory", "csrf_token": csrf[::-1]}
    )
    assert wrong.status_code == 403
    assert (await client.get("/api/agents/ai/", headers=person.headers)).status_code == 404
    saved = await client.post(
        "/dashboard/agent",
        data={"agent_name": "Alex", "csrf_token": csrf, "timezone": "UTC"},
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert (await client.get("/api/agents/ai/", headers=person.headers)).json()[
        "agent_name"
    ] == "Alex"


async def test_logout_ends_the_session_everywhere(client: Client, person: Person) -> None:
    csrf = await sign_in(client, person)
    cookie = client.cookies.get("callagent_session")
    assert cookie
    response = await client.post(
        "/dashboard/logout", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert response.headers["location"] == "/dashboard/login"
    # The old cookie, replayed, opens nothing: the session is gone from the database.
    client.cookies.set("callagent_session", cookie, path="/dashboard")
    assert (await client.get("/dashboard/", follow_redirects=False)).status_code == 303


async def test_pages_take_no_api_key_and_the_api_takes_no_cookie(
    client: Client, person: Person
) -> None:
    assert (
        await client.get("/dashboard/", headers=person.headers, follow_redirects=False)
    ).status_code == 303
    await sign_in(client, person)
    assert (await client.get("/api/customers/")).status_code == 401


async def test_every_page_renders_the_clients_data(client: Client, person: Person) -> None:
    ids = await _with_data(client, person, "Acme")
    await sign_in(client, person)
    expect = {
        "/dashboard/": ["Alex", "Calls handled", "+14155550123"],
        "/dashboard/agent": ['value="Alex"'],
        "/dashboard/training": ["Training level: 2", "Script"],
        "/dashboard/calls": ["+14155550123", "Outbound"],
        f"/dashboard/calls/{ids['call']}": ["Call with Acme Customer", "Transcript"],
        "/dashboard/customers": ["Acme Customer"],
        "/dashboard/customers?q=acme+cust": ["Acme Customer"],
        "/dashboard/customers?q=415555": ["Acme Customer"],
        f"/dashboard/customers/{ids['customer']}": ['value="Acme Customer"'],
        "/dashboard/callbacks": ["Acme wants a demo", "Reschedule"],
    }
    for page, texts in expect.items():
        response = await client.get(page)
        assert response.status_code == 200, page
        for text in texts:
            assert text in response.text, (page, text)


async def test_a_user_never_sees_another_clients_data(
    client: Client, new_person: Callable[[str], Awaitable[Person]]
) -> None:
    alice, bob = await new_person("Alpha Corp"), await new_person("Beta Corp")
    theirs = await _with_data(client, bob, "Beta")
    await _with_data(client, alice, "Alpha")
    csrf = await sign_in(client, alice)
    for page in [*PAGES, "/dashboard/customers?q=Beta", "/dashboard/callbacks?status=all"]:
        response = await client.get(page)
        assert response.status_code == 200, page
        for theirs_text in ("Beta Customer", "Beta wants a demo", bob.email):
            assert theirs_text not in response.text, (page, theirs_text)
        assert alice.email in response.text, page
    for page in [
        f"/dashboard/calls/{theirs['call']}",
        f"/dashboard/customers/{theirs['customer']}",
    ]:
        assert (await client.get(page)).status_code == 404, page
    for action, data in [
        (f"/dashboard/customers/{theirs['customer']}/do-not-call", {"do_not_call": "true"}),
        (f"/dashboard/customers/{theirs['customer']}", {"name": "Hijacked"}),
        (f"/dashboard/callbacks/{theirs['callback']}/cancel", {}),
        (
            f"/dashboard/callbacks/{theirs['callback']}/reschedule",
            {"scheduled_at": "2026-03-06T10:00"},
        ),
    ]:
        response = await client.post(action, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, action
    customer = await client.get(f"/api/customers/{theirs['customer']}/", headers=bob.headers)
    assert customer.json()["do_not_call"] is False
    assert customer.json()["name"] == "Beta Customer"
    callback = await client.get(f"/api/callbacks/{theirs['callback']}/", headers=bob.headers)
    assert callback.json()["status"] == "scheduled"


async def test_setup_training_call_and_callback_from_the_pages(
    client: Client, person: Person, api_state: ApiState
) -> None:
    # A node without telephony: the call is stored and comes back failed, said on the page.
    api_state.placer.placed = False  # type: ignore[attr-defined]
    api_state.placer.reason = "no telephony configured"  # type: ignore[attr-defined]
    csrf = await sign_in(client, person)
    response = await client.post(
        "/dashboard/agent",
        data={
            "csrf_token": csrf,
            "agent_name": "Robin",
            "personality_type": "friendly",
            "working_hours_start": "08:00",
            "working_hours_end": "18:00",
            "timezone": "Europe/Berlin",
            "business_info": '{"company_name": "Acme"}',
            "sales_goals": "{}",
            "phone_numbers": "",
        },
        follow_redirects=True,
    )
    assert "Saved." in response.text
    bad = await client.post(
        "/dashboard/agent",
        data={"csrf_token": csrf, "agent_name": "Robin", "timezone": "Mars/Base"},
    )
    assert bad.status_code == 400
    assert "timezone" in bad.text
    early = await client.post(
        "/dashboard/calls",
        data={"csrf_token": csrf, "phone_number": "+14155550199", "ignore_working_hours": "on"},
    )
    assert early.status_code == 409  # under 20 %: refused, said on the page
    assert "20" in early.text
    trained = await client.post(
        "/dashboard/training",
        data={"csrf_token": csrf, "training_type": "script", "training_content": "word " * 200},
        follow_redirects=True,
    )
    assert "Training level: 25" in trained.text
    called = await client.post(
        "/dashboard/calls",
        data={
            "csrf_token": csrf,
            "phone_number": "+14155550199",
            "purpose": "follow_up",
            "ignore_working_hours": "on",
        },
        follow_redirects=True,
    )
    assert called.status_code == 200
    assert "/dashboard/calls/" in str(called.url)
    assert "Call with +14155550199" in called.text
    assert "could not be placed: <strong>no telephony configured</strong>" in called.text
    assert len(api_state.placer.requests) == 1  # type: ignore[attr-defined]
    customer_id = api_state.placer.requests[0].customer_id  # type: ignore[attr-defined]
    callback = await client.post(
        "/api/callbacks/",
        json={"customer_id": str(customer_id), "scheduled_at": "2026-03-05T15:00:00Z"},
        headers=person.headers,
    )
    callback_id = callback.json()["id"]
    moved = await client.post(
        f"/dashboard/callbacks/{callback_id}/reschedule",
        data={"csrf_token": csrf, "scheduled_at": "2026-03-06T09:30"},
        follow_redirects=True,
    )
    assert moved.status_code == 200
    stored = await client.get(f"/api/callbacks/{callback_id}/", headers=person.headers)
    # 09:30 in the agent's zone (Berlin, UTC+1 in March).
    assert stored.json()["scheduled_at"].startswith("2026-03-06T08:30:00")
    past = await client.post(
        f"/dashboard/callbacks/{callback_id}/reschedule",
        data={"csrf_token": csrf, "scheduled_at": "2020-01-01T09:00"},
    )
    assert past.status_code == 400
    assert "must be in the future" in past.text
    await client.post(
        f"/dashboard/callbacks/{callback_id}/cancel",
        data={"csrf_token": csrf},
        follow_redirects=True,
    )
    stored = await client.get(f"/api/callbacks/{callback_id}/", headers=person.headers)
    assert stored.json()["status"] == "cancelled"
    dnc = await client.post(
        f"/dashboard/customers/{customer_id}/do-not-call",
        data={"csrf_token": csrf, "do_not_call": "true"},
        follow_redirects=True,
    )
    assert "On the do-not-call list" in dnc.text


def test_the_root_opens_the_dashboard(api_state: ApiState) -> None:
    app = create_app(lambda: {}, api_state)
    paths = {route.path for route in app.routes}
    assert "/" in paths
    assert "/dashboard/login" in paths
    assert csrf_of('<input name="csrf_token" value="abc">') == "abc"


async def test_call_detail_shows_transcript_latency_actions_and_analysis(
    client: Client, person: Person, db: Database
) -> None:
    ids = await _with_data(client, person, "Acme")
    call_id = uuid.UUID(ids["call"])
    start = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
    lines = [
        ("agent", "Hello, this is Alex, an AI assistant."),  # the greeting: nothing measured
        ("caller", "Call me Friday."),
        ("agent", "I will call you on Friday."),
    ]
    turns = [
        TranscriptTurn(speaker=s, text=t, at=start + dt.timedelta(seconds=5 * i))
        for i, (s, t) in enumerate(lines)
    ]
    measured = {"voice_to_voice": 987.0, "stt": 150.0, "end_of_turn": 400.0}
    latency = {
        "turns": [{**dict.fromkeys(("llm_first_token", "tts_first_audio", "wire")), **measured}]
    }
    await call_state.append_turns(db, person.client_id, call_id, turns, latency, now=start)
    async with db.write() as session:
        row = await session.get(CallSession, call_id)
        assert row is not None
        row.actions_taken = [
            {"type": "schedule_callback", "source": "rule", "at": "2026-03-06T14:00:00+00:00"}
        ]
        row.analysis = {"summary": "Wants a call on Friday."}
    await sign_in(client, person)
    page = (await client.get(f"/dashboard/calls/{call_id}")).text
    greeting, answer = page.index("an AI assistant"), page.index("I will call you on Friday.")
    figure = page.index("answered 987 ms after the caller stopped")
    assert greeting < answer < figure  # on the answer to the caller, not on the greeting
    assert "Schedule callback" in page
    assert "Fri 06 Mar 2026, 14:00 UTC" in page
    assert "Wants a call on Friday." in page
