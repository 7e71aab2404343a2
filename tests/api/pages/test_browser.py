"""The dashboard in a real browser: Debian's chromium driven by Playwright (no browser
download), against the app behind a real uvicorn, as `callagent serve` runs it. Every request
to a host other than the app's is refused and recorded: the pages load nothing from outside."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from callagent.api.app import create_app
from callagent.api.pages import FirstRun
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus

from helpers.api_fixtures import SCRIPT
from helpers.dashboard_fixtures import PASSWORD, Person
from helpers.recordings import write_recording
from helpers.served import CHROMIUM, serving
from helpers.store_fixtures import FixedClock, RecordingPlacer, own_migrated_url

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium"
    ),
    # One backend is enough here: the page tests (test_pages.py) run the routes on both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
async def served(api_state: ApiState) -> AsyncIterator[str]:
    """The app behind a real uvicorn on loopback."""
    async with serving(create_app(lambda: {}, api_state)) as base:
        yield base


@dataclass
class Browser:
    """A page in chromium, and what it tried to fetch from elsewhere or logged as an error."""

    page: Any
    base: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def sign_in(self, who: Person) -> None:
        await self.page.goto(f"{self.base}/")
        await self.page.get_by_label("E-mail").fill(who.email)
        await self.page.get_by_label("Password").fill(who.password)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(f"{self.base}/dashboard/")


@contextlib.asynccontextmanager
async def chromium_on(served: str) -> AsyncIterator[Browser]:
    """A page in Debian's chromium that may load only what ``served`` serves."""
    assert CHROMIUM is not None, "CI must run the browser tests: install Debian's chromium"
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await chromium.new_context()
            page = await context.new_page()
            page.set_default_timeout(15_000)
            browser = Browser(page, served)

            async def only_the_app(route: Any) -> None:
                if route.request.url.startswith(served) or route.request.url.startswith("data:"):
                    await route.continue_()
                else:
                    browser.outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_app)
            page.on(
                "console",
                lambda message: (
                    browser.errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: browser.errors.append(str(error)))
            yield browser
        finally:
            await chromium.close()


@pytest.fixture
async def browser(served: str) -> AsyncIterator[Browser]:
    async with chromium_on(served) as browser:
        yield browser


async def _seed(base: str, who: Person, name: str) -> dict[str, str]:
    """An agent trained to 25 %, a customer, a call and a callback of ``who``'s client, made
    through the REST API with its key."""
    async with httpx.AsyncClient(base_url=base, headers=who.headers) as api:
        assert (await api.post("/api/agents/ai/setup/", json={"agent_name": name})).is_success
        training = {"training_type": "script", "training_content": SCRIPT}
        assert (await api.post("/api/agents/ai/training/", json=training)).is_success
        customer = await api.post(
            "/api/customers/",
            json={"phone_number": "+14155550123", "name": f"{name} Customer"},
        )
        assert customer.is_success, customer.text
        call = await api.post(
            "/api/agents/ai/start-call/",
            json={"phone_number": "+14155550123", "ignore_working_hours": True},
        )
        assert call.is_success, call.text
        callback = await api.post(
            "/api/callbacks/",
            json={
                "customer_id": customer.json()["id"],
                "scheduled_at": "2026-03-05T15:00:00Z",
                "reason": f"{name} asked for a demo",
            },
        )
        assert callback.is_success, callback.text
    return {"customer": customer.json()["id"], "call": call.json()["call_id"]}


async def test_setup_training_call_and_callback_click_through(
    browser: Browser, person: Person, api_state: ApiState
) -> None:
    # This node has no telephony: the call is stored and comes back failed, said on the page.
    api_state.placer.placed = False  # type: ignore[attr-defined]
    api_state.placer.reason = "no telephony configured"  # type: ignore[attr-defined]
    page = browser.page
    await browser.sign_in(person)
    assert await page.get_by_text("Your agent is not set up yet").is_visible()

    await page.get_by_role("link", name="Set up your agent").click()
    await page.get_by_label("Agent name").fill("Robin")
    await page.get_by_label("Personality").select_option("friendly")
    await page.get_by_label("Time zone").fill("Europe/Berlin")
    await page.get_by_role("button", name="Create agent").click()
    await page.wait_for_url("**/dashboard/agent?saved=true")
    assert await page.get_by_role("status").filter(has_text="Saved.").is_visible()

    await page.get_by_role("link", name="Training").click()
    assert await page.get_by_role("heading", name="Training level: 0 %").is_visible()
    await page.get_by_label("What you teach").select_option("script")
    await page.get_by_label("Text (script, company facts, goals…)").fill(SCRIPT)
    await page.get_by_role("button", name="Add session").click()
    await page.get_by_role("heading", name="Training level: 25 %").wait_for()
    assert await page.get_by_text("20 %: the agent may make calls").is_visible()

    # Talk to your agent: this node runs without voice models, and the page says so
    # (test_phone.py talks through it with the ci models and a fake microphone).
    await page.get_by_role("link", name="Talk to your agent").click()
    await page.get_by_role("heading", name="Talk to your agent").wait_for()
    assert await page.get_by_text("runs without voice models").is_visible()

    await page.get_by_role("link", name="Calls").click()
    await page.get_by_label("Number to call").fill("+14155550199")
    await page.get_by_label("Purpose").fill("sales_outreach")
    await page.get_by_label("Call even outside working hours").check()
    await page.get_by_role("button", name="Call now").click()
    await page.wait_for_url("**/dashboard/calls/*")
    alert = page.get_by_role("alert")
    assert "could not be placed: no telephony configured" in await alert.inner_text()

    await page.get_by_role("link", name="+14155550199").click()  # the customer
    customer_url = page.url
    async with httpx.AsyncClient(base_url=browser.base, headers=person.headers) as api:
        customer_id = customer_url.rsplit("/", 1)[1]
        made = await api.post(
            "/api/callbacks/",
            json={"customer_id": customer_id, "scheduled_at": "2026-03-05T15:00:00Z"},
        )
        assert made.is_success, made.text
        callback_id = made.json()["id"]

    await page.get_by_role("link", name="Callbacks").click()
    await page.get_by_label("New time").fill("2026-03-06T09:30")
    await page.get_by_role("button", name="Reschedule").click()
    await page.wait_for_url("**/dashboard/callbacks")
    assert await page.get_by_text("Fri 06 Mar 2026, 09:30 CET").is_visible()
    async with httpx.AsyncClient(base_url=browser.base, headers=person.headers) as api:
        stored = (await api.get(f"/api/callbacks/{callback_id}/")).json()
    assert stored["scheduled_at"].startswith("2026-03-06T08:30:00")  # 09:30 in Berlin

    await page.get_by_role("button", name="Cancel callback to +14155550199").click()
    await page.wait_for_url("**/dashboard/callbacks")
    assert await page.get_by_text("No callbacks here.").is_visible()
    async with httpx.AsyncClient(base_url=browser.base, headers=person.headers) as api:
        stored = (await api.get(f"/api/callbacks/{callback_id}/")).json()
    assert stored["status"] == "cancelled"

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/dashboard/login")
    await page.goto(f"{browser.base}/dashboard/calls")
    assert page.url.endswith("/dashboard/login")
    assert browser.outside == []
    assert browser.errors == []


async def test_every_page_renders_and_shows_only_the_users_client(
    browser: Browser, new_person: Callable[[str], Awaitable[Person]]
) -> None:
    alice, bob = await new_person("Alpha Corp"), await new_person("Beta Corp")
    mine = await _seed(browser.base, alice, "Alpha")
    theirs = await _seed(browser.base, bob, "Beta")
    page = browser.page
    await browser.sign_in(alice)
    expected = {
        "/dashboard/": "Calls handled",
        "/dashboard/agent": "Agent setup",
        "/dashboard/training": "Training level: 25 %",
        "/dashboard/calls": "+14155550123",
        f"/dashboard/calls/{mine['call']}": "Call with Alpha Customer",
        "/dashboard/customers": "Alpha Customer",
        f"/dashboard/customers/{mine['customer']}": "Do not call",
        "/dashboard/callbacks": "Alpha asked for a demo",
    }
    for path, text in expected.items():
        response = await page.goto(f"{browser.base}{path}")
        assert response is not None
        assert response.status == 200, path
        body = await page.inner_text("body")
        assert text in body, path
        for other in ("Beta Customer", "Beta asked for a demo", bob.email):
            assert other not in body, (path, other)
    for path in (
        f"/dashboard/calls/{theirs['call']}",
        f"/dashboard/customers/{theirs['customer']}",
    ):
        response = await page.goto(f"{browser.base}{path}")
        assert response is not None
        assert response.status == 404, path
    assert browser.outside == []


async def test_a_post_without_the_csrf_token_is_refused(browser: Browser, person: Person) -> None:
    await browser.sign_in(person)
    # The page's own cookie goes along (same origin), the token does not: refused.
    status = await browser.page.evaluate(
        """async () => (await fetch('/dashboard/agent', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'agent_name=Mallory'})).status"""
    )
    assert status == 403
    await browser.page.goto(f"{browser.base}/dashboard/agent")
    assert await browser.page.get_by_label("Agent name").input_value() == ""


async def test_keyboard_and_phone(browser: Browser, person: Person) -> None:
    page = browser.page
    await browser.sign_in(person)
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.set_viewport_size({"width": 375, "height": 740})
    for path in ("/dashboard/", "/dashboard/agent", "/dashboard/calls", "/dashboard/callbacks"):
        await page.goto(f"{browser.base}{path}")
        # Readable on a phone: nothing wider than the screen makes the page scroll sideways.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, path


async def test_the_live_page_follows_a_call_and_its_recording_plays(
    browser: Browser, person: Person, api_state: ApiState, db: Database, tmp_path: Path
) -> None:
    """The live list takes each turn the call journal writes, without a reload, and drops the
    call when it ends; the call's page then loads its recording into the audio player."""
    api_state.recordings = tmp_path
    call_id = uuid.UUID((await _seed(browser.base, person, "Alpha"))["call"])
    answered = dt.datetime.now(dt.UTC)
    await call_state.apply_call_update(
        db, person.client_id, call_id, CallUpdate(status=CallStatus.IN_PROGRESS), answered
    )
    page = browser.page
    await browser.sign_in(person)
    await page.get_by_role("link", name="Live").click()
    await page.get_by_role("heading", name="Alpha Customer").wait_for()
    assert await page.get_by_text("Nothing said yet.").is_visible()
    await page.evaluate("window.sameDocument = true")  # gone if the page reloaded

    turn = TranscriptTurn(speaker="caller", text="What would panels cost me?", at=answered)
    await call_state.append_turns(db, person.client_id, call_id, [turn], now=answered)
    await page.get_by_text("What would panels cost me?").wait_for()
    await call_state.apply_call_update(
        db, person.client_id, call_id, CallUpdate(status=CallStatus.COMPLETED), answered
    )
    await page.get_by_text("No calls on the line right now.").wait_for()
    assert await page.evaluate("window.sameDocument") is True

    recording = write_recording(tmp_path, call_id, seconds=1.0)
    await call_state.apply_call_update(
        db, person.client_id, call_id, CallUpdate(recording_ref=recording.name), answered
    )
    await page.goto(f"{browser.base}/dashboard/calls/{call_id}")
    # HAVE_METADATA: chromium fetched the file through the session route and parsed its header.
    await page.wait_for_function("document.getElementById('recording').readyState >= 1")
    duration = await page.evaluate("document.getElementById('recording').duration")
    assert abs(duration - 1.0) < 0.01
    assert await page.get_by_role("link", name="Download the recording (WAV)").is_visible()
    assert browser.outside == []
    assert browser.errors == []


# What a page must have for a screen reader and the keyboard (docs/dashboard.md, "The pages"):
# every visible form control and meter named by a label (or aria-label/-labelledby), every
# button and link a name, images an alt, ids unique (a duplicate breaks <label for>), one h1,
# the language and a title. Returns the problems found.
PAGE_PROBLEMS = """() => {
  const problems = [];
  const text = (el) => (el ? el.textContent.trim() : "");
  const named = (el) =>
    (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean)
      .map((id) => text(document.getElementById(id))).join("") ||
    [...(el.labels || [])].map(text).join("") || (el.title || "").trim();
  for (const el of document.querySelectorAll("input, select, textarea, meter, progress")) {
    if (el.type !== "hidden" && !named(el)) problems.push("no label: " + el.outerHTML.slice(0, 99));
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!text(el) && !named(el)) problems.push("no name: " + el.outerHTML.slice(0, 160));
  }
  for (const el of document.querySelectorAll("img:not([alt])")) problems.push("no alt: " + el.src);
  const seen = new Set();
  for (const el of document.querySelectorAll("[id]")) {
    if (seen.has(el.id)) problems.push("duplicate id: " + el.id);
    seen.add(el.id);
  }
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(h1 + " h1 headings");
  if (!document.documentElement.lang) problems.push("no lang");
  if (!document.title.trim()) problems.push("no title");
  return problems;
}"""
PHONE = {"width": 375, "height": 740}


async def _check_page(browser: Browser, label: str) -> None:
    """The page now open is labelled (PAGE_PROBLEMS) and, at a phone's 375 px, never scrolls
    sideways (wide tables scroll inside themselves)."""
    assert await browser.page.evaluate(PAGE_PROBLEMS) == [], label
    width = await browser.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], label


async def _focus_is_visible(page: Any) -> bool:
    """Whether the focused element draws the focus ring (dashboard.css, :focus-visible)."""
    return bool(
        await page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                 return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2; }"""
        )
    )


async def test_every_page_is_labelled_reachable_by_keyboard_and_fits_a_phone(
    browser: Browser, person: Person
) -> None:
    mine = await _seed(browser.base, person, "Alpha")
    page = browser.page
    await page.set_viewport_size(PHONE)
    await browser.sign_in(person)
    nav = await page.eval_on_selector_all(
        'nav[aria-label="Main"] a', "links => links.map(a => a.getAttribute('href'))"
    )
    assert "/dashboard/talk" in nav
    assert "/dashboard/callbacks" in nav

    # The keyboard alone: the skip link first, then every entry of the navigation in order,
    # each with a visible focus ring, then Sign out; Enter follows a link.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert await _focus_is_visible(page)
    for href in nav:
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.getAttribute('href')") == href
        assert await _focus_is_visible(page), href
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Sign out"
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{browser.base}{nav[-1]}")
    current = page.locator('nav a[aria-current="page"]')
    assert await current.get_attribute("href") == nav[-1]

    details = [
        f"/dashboard/calls/{mine['call']}",
        f"/dashboard/customers/{mine['customer']}",
        "/dashboard/customers/import",
    ]
    for path in [*nav, *details]:
        response = await page.goto(f"{browser.base}{path}")
        assert response is not None
        assert response.status == 200, path
        await _check_page(browser, path)

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/dashboard/login")
    await _check_page(browser, "login")
    assert browser.outside == []
    assert browser.errors == []


@pytest.fixture
def fresh_database_url(backend: str) -> str:
    """A database of the test's own: the first start is about a database without users."""
    return own_migrated_url(backend)


async def test_the_first_start_sets_up_by_keyboard_from_the_printed_link(
    fresh_database_url: str, placer: RecordingPlacer, clock: FixedClock
) -> None:
    first_run = FirstRun()
    state = ApiState(db=Database(fresh_database_url), placer=placer, clock=clock)
    app = create_app(lambda: {}, state, first_run=first_run)
    async with serving(app) as base, chromium_on(base) as browser:
        page = browser.page
        await page.set_viewport_size(PHONE)
        await page.goto(f"{base}/")  # what `make run` opens onto
        await page.wait_for_url("**/dashboard/login")
        assert await page.get_by_text("Nobody can sign in yet").is_visible()
        await _check_page(browser, "login before set-up")

        await page.goto(first_run.url(base))
        await _check_page(browser, "set-up form")
        # Typed and submitted with the keyboard alone, from the field that has the focus.
        assert await page.evaluate("document.activeElement.id") == "business_name"
        for value in ("Sunny Roofs", "owner@sunny.example", PASSWORD, PASSWORD):
            assert await _focus_is_visible(page)
            await page.keyboard.type(value)
            await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Create my business"
        assert await _focus_is_visible(page)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Sunny Roofs is set up").wait_for()
        await _check_page(browser, "set-up done")  # the API key wraps on a phone
        assert (await page.locator("#api-key").inner_text()).startswith("ca_")

        await page.get_by_role("link", name="Set up your agent").click()
        await page.get_by_role("heading", name="Agent setup").wait_for()  # signed in
        assert browser.errors == []
        response = await page.goto(first_run.url(base))
        assert response is not None
        assert response.status == 403  # spent: the installation has its user
        assert browser.outside == []
