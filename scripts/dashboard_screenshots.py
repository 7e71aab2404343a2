#!/usr/bin/env python3
"""Regenerate the dashboard screenshots in docs/dashboard/ (docs/dashboard.md).

Starts the app on a throw-away SQLite database filled with a small demo client (an agent
trained past 80 %, customers, an answered call with its transcript, latency, actions,
analysis and recording - flite speaking its lines -, a call on the line now, callbacks, two
weeks of calls for the analytics, a running campaign), signs in with Debian's chromium
through Playwright, and saves one PNG per page, a customer CSV checked with two bad rows,
the overview at a phone's width, and "Talk to your agent" after a real exchange with the ``ci``
models (chromium's fake microphone plays Debian's flite speaking).

    python scripts/dashboard_screenshots.py [--out docs/dashboard]

Needs the test extra (``pip install -e '.[test]'``, for Playwright) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile
import uvicorn
from playwright.async_api import async_playwright

from callagent.api.app import create_app
from callagent.api.pages import BrowserPhone
from callagent.api.state import ApiState
from callagent.store.db import Database, migrate_url
from callagent.store.models import CallSession
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state, clients, users
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult
from callagent.telephony.recording import CallRecorder

EMAIL = "owner@sunny-roofs.example"
PASSWORD = "demo password 1"
MODELS = Path(__file__).resolve().parents[1] / "models"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


class DemoPlacer:
    """Says every call was placed (no telephony here): the demo writes what happened next."""

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        return PlacementResult(placed=True, reason="", telephony_call_id=f"demo-{uuid.uuid4()}")


async def _seed(base: str, db: Database, api_key: str, recordings: Path) -> dict[str, str]:
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {api_key}"}
    ) as api:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await api.post(path, json=body)
            response.raise_for_status()
            return dict(response.json())

        await post(
            "/api/agents/ai/setup/",
            {
                "agent_name": "Robin",
                "personality_type": "friendly",
                "timezone": "Europe/Berlin",
                "business_info": {
                    "company_name": "Sunny Roofs",
                    "product_description": "Solar panels installed in a day",
                },
            },
        )
        script = (
            "Hello [CUSTOMER_NAME], this is [AGENT_NAME] from [COMPANY]. We fit solar panels "
            "in a single day and most homes save a third on their power bill. "
        ) * 8
        for session in [
            {"training_type": "script", "training_content": script},
            {
                "training_type": "product",
                "training_content": "Panels, inverter and battery. " * 30,
                "product_details": {
                    "name": "Sunny Home 6 kW",
                    "features": ["one-day fitting", "25-year warranty"],
                    "pricing": "from 6,900 EUR",
                    "benefits": ["lower bills", "fixed price"],
                },
            },
            {
                "training_type": "objections",
                "objection_responses": {
                    "too expensive": "Most customers pay it back in eight years.",
                    "no time": "It takes one day; we work around you.",
                    "my roof is too old": "We check it for free first.",
                    "I rent": "Then I will not take more of your time.",
                    "send me something": "Gladly - which e-mail should I use?",
                },
            },
            {
                "training_type": "techniques",
                "sales_techniques": [
                    "listen first",
                    "ask open questions",
                    "mirror",
                    "recap",
                    "close",
                ],
            },
        ]:
            await post("/api/agents/ai/training/", session)
        people = [
            ("+4915112345678", "Jonas Weber", "warm"),
            ("+4915223456789", "Mia Schneider", "hot"),
            ("+4917634567890", "Lukas Fischer", "cold"),
        ]
        ids = {}
        for number, name, interest in people:
            made = await post(
                "/api/customers/",
                {"phone_number": number, "name": name, "interest_level": interest},
            )
            ids[name] = made["id"]
        call = await post(
            "/api/agents/ai/start-call/",
            {
                "phone_number": "+4915112345678",
                "purpose": "sales_outreach",
                "ignore_working_hours": True,
            },
        )
        call_id = uuid.UUID(call["call_id"])
        client_id = await clients.authenticate(db, api_key)
        start = NOW - dt.timedelta(hours=2)
        lines = [
            ("agent", "Hello Jonas, this is Robin, an AI assistant from Sunny Roofs."),
            ("caller", "Oh, hi. What is this about?"),
            ("agent", "We fit solar panels in a day. Is your power bill something you watch?"),
            ("caller", "It is, but I have no time this week. Call me Friday afternoon?"),
            ("agent", "Of course. I will call you on Friday at three. Thank you, Jonas!"),
        ]
        turns = [
            TranscriptTurn(speaker=s, text=t, at=start + dt.timedelta(seconds=6 * i))
            for i, (s, t) in enumerate(lines)
        ]
        latency = {
            "turns": [
                {"end_of_turn": 420.0, "stt": 180.0, "llm_first_token": 310.0,
                 "tts_first_audio": 120.0, "wire": 20.0, "voice_to_voice": 1050.0},
                {"end_of_turn": 460.0, "stt": 210.0, "llm_first_token": 290.0,
                 "tts_first_audio": 110.0, "wire": 20.0, "voice_to_voice": 1090.0},
            ],
            "barge_in_stop_ms": [96.0],
        }  # fmt: skip
        await call_state.append_turns(db, client_id, call_id, turns, latency, now=start)
        friday = NOW + dt.timedelta(days=(4 - NOW.weekday()) % 7 or 7)
        await post(
            "/api/agents/ai/call-outcome/",
            {
                "call_id": str(call_id),
                "outcome": "callback_requested",
                "callback_requested": True,
                "callback_datetime": friday.replace(hour=14, minute=0).isoformat(),
                "callback_reason": "Busy this week; wants a call on Friday afternoon",
                "conversation_notes": "Interested in lower bills; asked to call back Friday.",
                "sentiment": "positive",
                "duration_s": 31,
                "customer_satisfaction": 4,
            },
        )
        async with db.write() as session:
            row = await session.get(CallSession, call_id)
            assert row is not None
            row.actions_taken = [
                {
                    "type": "schedule_callback",
                    "source": "rule",
                    "when": "Friday afternoon",
                    "at": friday.replace(hour=14, minute=0).isoformat(),
                    "taken_at": (start + dt.timedelta(seconds=20)).isoformat(),
                    "result": "done",
                }
            ]
            row.recording_ref = await asyncio.to_thread(_record, recordings, call_id, lines)
            row.analysis = {
                "summary": "Jonas is interested in lower bills but busy; call back Friday at 3.",
                "interest_level": "warm",
                "objections": ["no time"],
            }
            row.analyzed_at = NOW - dt.timedelta(hours=1)
        await post(
            "/api/callbacks/",
            {
                "customer_id": ids["Mia Schneider"],
                "scheduled_at": (NOW + dt.timedelta(days=1)).replace(hour=9).isoformat(),
                "reason": "Wants a quote for a 6 kW system",
                "priority": 1,
            },
        )
        live = await post(
            "/api/agents/ai/start-call/",
            {
                "phone_number": "+4915223456789",
                "purpose": "follow_up",
                "ignore_working_hours": True,
            },
        )
        live_id = uuid.UUID(live["call_id"])
        answered = NOW - dt.timedelta(seconds=47)
        await call_state.apply_call_update(
            db, client_id, live_id, CallUpdate(status=CallStatus.IN_PROGRESS), answered
        )
        talk = [
            (
                "agent",
                "Hello Mia, this is Robin, an AI assistant from Sunny Roofs, about your quote.",
            ),
            ("caller", "Yes, hi. Does the 6 kW system fit a roof facing west?"),
            ("agent", "It does; a west roof gives about 15 percent less, mostly in the evening."),
        ]
        await call_state.append_turns(
            db,
            client_id,
            live_id,
            [
                TranscriptTurn(speaker=s, text=t, at=answered + dt.timedelta(seconds=8 * i))
                for i, (s, t) in enumerate(talk)
            ],
            now=answered,
        )
        return {"call": str(call_id), "live": str(live_id)}


async def _seed_campaign_and_history(base: str, db: Database, api_key: str) -> str:
    """Two weeks of past calls (outcomes and voice-to-voice figures per day, as the call
    runner and the analysis leave them), learning counts, and a running campaign whose first
    contact was reached, for the campaign and analytics pages. The campaign's id."""
    from sqlalchemy import select

    from callagent.store import counters
    from callagent.store.models import AIAgent, CampaignContact, ScheduledCallback
    from callagent.store.services import callbacks
    from callagent.store.states import CallbackStatus, CallOutcome, CallType

    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {api_key}"}
    ) as api:
        campaign = (
            await api.post(
                "/api/campaigns/",
                json={
                    "name": "Spring offer",
                    "call_purpose": "sales_outreach",
                    "script_override": "Mention the spring price: 10 % off until May.",
                    "pacing": {"stagger_minutes": 5, "max_concurrent": 2},
                },
            )
        ).json()
        added = await api.post(f"/api/campaigns/{campaign['id']}/contacts/", json={"filter": {}})
        added.raise_for_status()
        (await api.post(f"/api/campaigns/{campaign['id']}/start/")).raise_for_status()
        customer = (await api.get("/api/customers/")).json()["items"][0]
    client_id = await clients.authenticate(db, api_key)
    outcomes = [
        CallOutcome.INTERESTED,
        CallOutcome.NO_ANSWER,
        CallOutcome.CALLBACK_REQUESTED,
        CallOutcome.NOT_INTERESTED,
        CallOutcome.CONVERTED,
        CallOutcome.VOICEMAIL,
        CallOutcome.DEMO_SCHEDULED,
    ]
    async with db.write() as session:
        agent = await session.scalar(select(AIAgent).where(AIAgent.client_id == client_id))
        assert agent is not None
        for days_ago in range(1, 14):
            for i in range(2 + (days_ago * 7) % 5):
                at = NOW - dt.timedelta(days=days_ago, hours=i * 2)
                outcome = outcomes[(days_ago + i) % len(outcomes)]
                measured = [
                    880.0 + 35 * ((days_ago + i) % 6) + 90 * turn + (400 if turn == 2 else 0)
                    for turn in range(3)
                ]
                session.add(
                    CallSession(
                        client_id=client_id,
                        agent_id=agent.id,
                        customer_id=uuid.UUID(customer["id"]),
                        call_type=CallType.OUTBOUND,
                        phone_number=customer["phone_number"],
                        status=CallStatus.COMPLETED,
                        outcome=outcome,
                        latency={"turns": [{"voice_to_voice": v} for v in measured]}
                        if outcome not in (CallOutcome.NO_ANSWER, CallOutcome.VOICEMAIL)
                        else {},
                        created_at=at,
                        started_at=at,
                        ended_at=at + dt.timedelta(minutes=3),
                    )
                )
        metrics = dict(agent.performance_metrics or {})
        metrics["learning"] = {
            "calls": 46,
            "good": 25,
            "answers": {
                "a1": {"calls": 14, "good": 10, "objection": "too expensive",
                       "text": "Most customers pay it back in eight years."},
                "a2": {"calls": 11, "good": 4, "objection": "too expensive",
                       "text": "We can spread the cost over 24 months."},
            },
            "hours": {"10": {"calls": 16, "good": 11}, "17": {"calls": 12, "good": 4}},
            "weekdays": {"tue": {"calls": 13, "good": 9}, "fri": {"calls": 10, "good": 3}},
            "openers": {
                "Hello [CUSTOMER_NAME], this is Robin from Sunny Roofs": {
                    "calls": 21, "good": 13, "direction": "outbound"},
            },
        }  # fmt: skip
        agent.performance_metrics = metrics
        # The scheduler dialled the campaign's first contact and it was reached.
        contact = await session.scalar(
            select(CampaignContact)
            .where(CampaignContact.campaign_id == uuid.UUID(campaign["id"]))
            .order_by(CampaignContact.position)
            .limit(1)
        )
        assert contact is not None
        row = await session.get(ScheduledCallback, contact.callback_id)
        assert row is not None
        for status in (CallbackStatus.IN_PROGRESS, CallbackStatus.COMPLETED):
            await counters.bump(session, client_id, callbacks.move(row, status))
        call = CallSession(
            client_id=client_id,
            agent_id=agent.id,
            customer_id=contact.customer_id,
            call_type=CallType.OUTBOUND,
            phone_number="+4900000000",
            status=CallStatus.COMPLETED,
            outcome=CallOutcome.INTERESTED,
            created_at=NOW - dt.timedelta(minutes=20),
        )
        session.add(call)
        await session.flush()
        contact.callback_id = None
        contact.state, contact.answered, contact.attempts = "done", True, 1
        contact.reason, contact.last_call_id = "interested", call.id
    return str(campaign["id"])


async def _import_shot(page: Any, base: str, out: Path, folder: Path) -> None:
    """The customer import page after checking a file with two bad rows."""
    csv = folder / "customers.csv"
    csv.write_text(
        "phone_number,name,interest_level\n"
        "+4915730000001,Lea Braun,warm\n"
        "+4915730000002,Tim Vogel,lukewarm\n"
        "+4915730000003,Ida Koch,\n"
        "0301234,Max Roth,cold\n"
    )
    await page.goto(f"{base}/dashboard/customers/import")
    await page.get_by_label("CSV file").set_input_files(str(csv))
    await page.get_by_label("Only check the file: write nothing").check()
    await page.get_by_role("button", name="Import").click()
    await page.locator("#row-errors").wait_for()
    await page.screenshot(path=out / "customers-import.png", full_page=True)


def _record(folder: Path, call_id: uuid.UUID, lines: list[tuple[str, str]]) -> str:
    """The demo call's recording, as the call runner writes it (caller left, agent right):
    flite speaks each line on its speaker's side."""
    import soxr

    recorder = CallRecorder(folder, call_id)
    recorder.start(16_000)
    frame = 320  # 20 ms at 16 kHz
    for speaker, text in lines:
        spoken = subprocess.run(
            ["flite", "-voice", "slt", "-t", text, "-o", "/dev/stdout"],
            check=True,
            capture_output=True,
        ).stdout
        samples, rate = soundfile.read(io.BytesIO(spoken), dtype="int16")
        pcm = soxr.resample(samples, rate, 16_000).astype("<i2")
        pcm = np.concatenate([pcm, np.zeros(8000, dtype="<i2")])  # half a second's pause
        silence = bytes(frame * 2)
        for at in range(0, len(pcm) - frame + 1, frame):
            words = pcm[at : at + frame].tobytes()
            recorder.caller_audio(words if speaker == "caller" else silence, 16_000)
            recorder.agent_audio(words if speaker == "agent" else silence)
    recorder.close()
    return recorder.reference


async def _browser_phone(db: Database) -> tuple[BrowserPhone, Any]:
    """The browser phone with the ``ci`` models, as ``callagent serve`` wires it."""
    from callagent.app.components import load_engines
    from callagent.dialog.agent_profile import DEFAULT_AGENT
    from callagent.settings import ModelSettings
    from callagent.telephony.call_journal import CallJournals
    from callagent.telephony.call_runner import CallRunner
    from callagent.telephony.routing import CallRouter, ProfileCache
    from callagent.voice_pipeline.clock import MonotonicClock

    models = MODELS
    engines = await asyncio.to_thread(load_engines, ModelSettings(profile="ci", models_dir=models))
    clock = MonotonicClock()
    profiles = ProfileCache(db)
    router = CallRouter(db, profiles, fallback=DEFAULT_AGENT)
    runner = CallRunner(engines, DEFAULT_AGENT, clock, router=router, journals=CallJournals(db))

    async def close() -> None:
        await profiles.close()
        await db.dispose()

    return BrowserPhone(runner, clock), close


async def _talk_shot(driver: Any, chromium: str, base: str, out: Path, folder: Path) -> None:
    """The "Talk to your agent" page after a real exchange: chromium's fake microphone plays flite's
    words after the greeting, the ``ci`` models answer."""
    words = folder / "words.wav"
    await asyncio.to_thread(
        subprocess.run,
        ["flite", "-voice", "slt", "-t", "How much do the solar panels cost?", "-o", str(words)],
        check=True,
    )
    samples, rate = soundfile.read(str(words), dtype="float32")
    quiet = np.zeros(rate * 12, dtype=np.float32)
    caller = folder / "caller.wav"
    soundfile.write(str(caller), np.concatenate([quiet, samples, quiet, quiet]), rate, "PCM_16")
    browser = await driver.chromium.launch(
        executable_path=chromium,
        args=[
            "--no-sandbox",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={caller}",
        ],
    )
    page = await browser.new_page(viewport={"width": 1100, "height": 800})
    await page.goto(f"{base}/dashboard/login")
    await page.get_by_label("E-mail").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/dashboard/")
    await page.goto(f"{base}/dashboard/talk")
    await page.get_by_role("button", name="Start the call").click()
    await page.locator("#phone-transcript li.turn.agent").nth(1).wait_for(timeout=120_000)
    await page.screenshot(path=out / "talk.png", full_page=True)
    await page.get_by_role("button", name="Hang up").click()
    await page.get_by_role("status").filter(has_text="The call ended").wait_for()
    await browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(out: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="callagent-screens-"))
    url = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
    await migrate_url(url)
    db = Database(url)
    created = await clients.create_client(db, "Sunny Roofs")
    await users.create_user(db, created.client_id, EMAIL, PASSWORD)
    port = _free_port()
    phone, close_phone = await _browser_phone(Database(url))
    recordings = folder / "recordings"
    state = ApiState(db=Database(url), placer=DemoPlacer(), recordings=recordings)
    app = create_app(lambda: {}, state, phone=phone)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.05)
        ids = await _seed(base, db, created.api_key, recordings)
        campaign_id = await _seed_campaign_and_history(base, db, created.api_key)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1100, "height": 800})
            await page.goto(f"{base}/dashboard/login")
            await page.screenshot(path=out / "login.png")
            await page.get_by_label("E-mail").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/dashboard/")
            shots = {
                "overview": "/dashboard/",
                "agent": "/dashboard/agent",
                "training": "/dashboard/training",
                "calls": "/dashboard/calls",
                "call": f"/dashboard/calls/{ids['call']}",
                "live": "/dashboard/live",
                "customers": "/dashboard/customers",
                "callbacks": "/dashboard/callbacks",
                "campaigns": "/dashboard/campaigns",
                "campaign": f"/dashboard/campaigns/{campaign_id}",
                "analytics": "/dashboard/analytics",
            }
            for name, path in shots.items():
                await page.goto(f"{base}{path}")
                await page.screenshot(path=out / f"{name}.png", full_page=True)
            await _import_shot(page, base, out, folder)
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{base}/dashboard/")
            await page.screenshot(path=out / "overview-phone.png")
            await browser.close()
            await _talk_shot(driver, chromium, base, out, folder)
    finally:
        server.should_exit = True
        await task
        await close_phone()
        await db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard"))
    folder = parser.parse_args().out
    folder.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(folder))
    for png in sorted(folder.glob("*.png")):
        print(f"{png}  {png.stat().st_size // 1024} KiB")
