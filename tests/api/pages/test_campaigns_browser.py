"""A campaign clicked through in a real browser (marker ``browser``): Debian's chromium driven
by Playwright (no browser download) against the app behind uvicorn. Create with contacts by
filter, start, watch the progress move, pause, add contacts from a CSV file with a bad row.
Every request to a host other than the app's is refused and recorded."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store import counters
from callagent.store.models import AIAgent, CallSession, CampaignContact, ScheduledCallback
from callagent.store.services import callbacks
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus, CallType

from helpers.api_fixtures import SCRIPT
from helpers.dashboard_fixtures import Person
from helpers.served import CHROMIUM, serving

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium"
    ),
    # One backend is enough here: test_campaigns.py runs the routes on both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
async def served(api_state: ApiState) -> AsyncIterator[str]:
    """The app behind a real uvicorn on loopback."""
    async with serving(create_app(lambda: {}, api_state)) as base:
        yield base


async def _seed(base: str, who: Person) -> None:
    """An agent trained to 25 % and three customers, one on the do-not-call list."""
    async with httpx.AsyncClient(base_url=base, headers=who.headers) as api:
        assert (await api.post("/api/agents/ai/setup/", json={"agent_name": "Robin"})).is_success
        training = {"training_type": "script", "training_content": SCRIPT}
        assert (await api.post("/api/agents/ai/training/", json=training)).is_success
        for number, name in [
            ("+14155550151", "Ann Warm"),
            ("+14155550152", "Bob Cold"),
            ("+14155550153", "Cy Nocall"),
        ]:
            made = await api.post("/api/customers/", json={"phone_number": number, "name": name})
            assert made.is_success, made.text
        marked = await api.put(
            f"/api/customers/{made.json()['id']}/do-not-call/", json={"do_not_call": True}
        )
        assert marked.is_success, marked.text


async def _first_contact_answered(api_state: ApiState, campaign_id: str) -> None:
    """What the scheduler leaves when it has dialled the first contact and the call ended
    with interest: a call row, the contact done and answered."""
    async with api_state.db.write() as session:
        contact = await session.scalar(
            select(CampaignContact)
            .where(CampaignContact.campaign_id == uuid.UUID(campaign_id))
            .order_by(CampaignContact.position)
            .limit(1)
        )
        assert contact is not None
        agent_id = await session.scalar(
            select(AIAgent.id).where(AIAgent.client_id == contact.client_id)
        )
        assert agent_id is not None
        call = CallSession(
            client_id=contact.client_id,
            agent_id=agent_id,
            customer_id=contact.customer_id,
            call_type=CallType.OUTBOUND,
            phone_number="+14155550151",
            status=CallStatus.COMPLETED,
            outcome=CallOutcome.INTERESTED,
        )
        session.add(call)
        await session.flush()
        # The row the scheduler dialled is completed and leaves the contact (as
        # campaigns.settled does when the call's outcome settles it).
        row = await session.get(ScheduledCallback, contact.callback_id)
        assert row is not None
        for status in (CallbackStatus.IN_PROGRESS, CallbackStatus.COMPLETED):
            await counters.bump(session, row.client_id, callbacks.move(row, status))
        contact.callback_id = None
        contact.state, contact.answered, contact.attempts = "done", True, 1
        contact.reason = "interested"
        contact.last_call_id = call.id


async def test_a_campaign_is_created_started_and_followed(
    served: str, api_state: ApiState, person: Person, tmp_path: Path
) -> None:
    assert CHROMIUM is not None, "CI must run the browser tests: install Debian's chromium"
    await _seed(served, person)
    outside: list[str] = []
    errors: list[str] = []
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await chromium.new_page()
            page.set_default_timeout(15_000)

            async def only_the_app(route: Any) -> None:
                if route.request.url.startswith(served) or route.request.url.startswith("data:"):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_app)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))

            await page.goto(f"{served}/")
            await page.get_by_label("E-mail").fill(person.email)
            await page.get_by_label("Password").fill(person.password)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{served}/dashboard/")

            await page.get_by_role("link", name="Campaigns").click()
            await page.get_by_label("Name").fill("Spring offer")
            await page.get_by_label("Purpose").fill("sales_outreach")
            await page.get_by_label("Minutes between calls").fill("5")
            await page.get_by_label("Customers matching a filter").check()
            await page.get_by_role("button", name="Create the campaign").click()
            await page.wait_for_url("**/dashboard/campaigns/*")
            campaign_id = page.url.rsplit("/", 1)[1]
            await page.get_by_role("heading", name="Spring offer").wait_for()
            assert await page.locator("#campaign-status").inner_text() == "Draft"
            progress = page.locator("#progress-text")
            assert (await progress.inner_text()).startswith("0 of 2 contacts dialled")

            await page.get_by_role("button", name="Start").click()
            await page.wait_for_url(f"**/dashboard/campaigns/{campaign_id}")
            assert await page.locator("#campaign-status").inner_text() == "Running"
            async with httpx.AsyncClient(base_url=served, headers=person.headers) as api:
                stored = (await api.get(f"/api/campaigns/{campaign_id}/")).json()
            assert stored["status"] == "running"
            assert stored["pacing"]["stagger_minutes"] == 5.0

            await _first_contact_answered(api_state, campaign_id)
            await page.reload()
            assert (await progress.inner_text()).startswith(
                "1 of 2 contacts dialled; 1 answered, 0 converted"
            )
            bar = page.get_by_role("progressbar")
            assert await bar.get_attribute("value") == "1"
            assert await bar.get_attribute("max") == "2"

            await page.get_by_role("button", name="Pause").click()
            await page.wait_for_url(f"**/dashboard/campaigns/{campaign_id}")
            assert await page.locator("#campaign-status").inner_text() == "Paused"

            csv = tmp_path / "more.csv"
            csv.write_text("phone_number,name\n+14155550154,Dee New\nnot a number,Nobody\n")
            await page.get_by_label("From a CSV file").check()
            await page.get_by_label("CSV file", exact=True).set_input_files(str(csv))
            await page.get_by_role("button", name="Add contacts").click()
            await page.locator("#row-errors").wait_for()
            assert "Row 2" in await page.locator("#row-errors").inner_text()
            assert "1 added" in await page.locator("#contacts-added").inner_text()

            await page.get_by_role("link", name="Campaigns", exact=True).first.click()
            row = page.get_by_role("row").filter(has_text="Spring offer")
            text = await row.inner_text()
            assert "Paused" in text
            assert "1 of 3 dialled" in text
            assert "Interested 1" in text

            # On a phone's width neither page scrolls sideways (wide tables scroll inside).
            await page.set_viewport_size({"width": 375, "height": 740})
            for path in ("/dashboard/campaigns", f"/dashboard/campaigns/{campaign_id}"):
                await page.goto(f"{served}{path}")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 375, path
        finally:
            await chromium.close()
    assert outside == []
    assert errors == []
