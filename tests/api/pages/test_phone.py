"""The browser phone (docs/dashboard.md "Talk to your agent"): the dashboard's WebSocket behind
a real uvicorn (with wsproto, as ``callagent serve`` runs it), a ``websockets`` client playing
the page, and the real ``ci`` models: the agent greets, the caller's recorded words (flite) are
transcribed, the agent answers, and the call is stored with type ``test`` and its transcript.
Also: no session or another site's Origin is refused at the handshake, a wrong token at the
hello, and a malformed message ends only its own call."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
import soxr
from sqlalchemy import select

from callagent.api.app import create_app
from callagent.api.pages import BrowserPhone
from callagent.api.state import ApiState
from callagent.app.components import load_engines
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.settings import ModelSettings
from callagent.store.db import Database
from callagent.store.models import CallAnalysisJob
from callagent.store.services import calls
from callagent.store.states import CallOutcome, CallStatus, CallType
from callagent.telephony.admission import BusyPrompt, CallAdmission
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallRunner, VoiceEngines
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.clock import MonotonicClock

from helpers.dashboard_fixtures import Person
from helpers.served import serving
from helpers.store_data import ready_agent
from helpers.voices import flite_available, flite_phone_wav, word_set

websockets_client = pytest.importorskip("websockets.asyncio.client")
websockets_exceptions = pytest.importorskip("websockets.exceptions")

REPO = Path(__file__).resolve().parents[3]
RATE = 48_000  # what a browser's AudioContext usually runs at: the server resamples
FRAME = RATE // 50 * 2  # 20 ms of s16le

pytestmark = [
    pytest.mark.timeout(180),
    # The pages' tests run sessions on both backends; one is enough for the transport.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def engines() -> VoiceEngines:
    return load_engines(ModelSettings(profile="ci", models_dir=REPO / "models"))


@dataclass
class Node:
    base: str
    db: Database
    runner: CallRunner
    admission: CallAdmission


@pytest.fixture
async def node(api_state: ApiState, engines: VoiceEngines) -> AsyncIterator[Node]:
    """The app behind uvicorn, its browser phone served by a routed, journalled call runner."""
    db = api_state.db
    clock = MonotonicClock()
    profiles = ProfileCache(db)
    admission = CallAdmission(2)
    busy = BusyPrompt(engines.tts, "Every line is busy. We will call you back.")
    await busy.prepare()
    runner = CallRunner(
        engines,
        DEFAULT_AGENT,
        clock,
        router=CallRouter(db, profiles, fallback=DEFAULT_AGENT),
        journals=CallJournals(db),
        admission=admission,
        busy=busy,
    )
    app = create_app(lambda: {}, api_state, phone=BrowserPhone(runner, clock))
    try:
        async with serving(app, ws="wsproto", ws_max_size=65536) as base:
            yield Node(base.removeprefix("http://"), db, runner, admission)
    finally:
        await profiles.close()


async def _session(node: Node, who: Person) -> tuple[str, str]:
    """Sign in over HTTP: the session cookie and the talk page's CSRF token."""
    async with httpx.AsyncClient(base_url=f"http://{node.base}") as http:
        form = await http.get("/dashboard/login")
        secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
        assert secret
        response = await http.post(
            "/dashboard/login",
            data={"email": who.email, "password": who.password, "login_secret": secret.group(1)},
        )
        assert response.status_code == 303, response.text
        page = await http.get("/dashboard/talk")
        assert page.status_code == 200
        token = re.search(r'data-csrf="([^"]+)"', page.text)
        assert token, "the talk page offers no call (no agent?)"
        return str(http.cookies["callagent_session"]), token.group(1)


@dataclass
class Call:
    """One browser-phone call as the page sees it."""

    ws: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.audio_bytes += len(message)
                else:
                    self.events.append(json.loads(message))
                self.changed.set()
        except websockets_exceptions.ConnectionClosed:
            pass
        self.changed.set()

    def lines(self, speaker: str) -> list[str]:
        return [
            e["text"] for e in self.events if e["type"] == "transcript" and e["speaker"] == speaker
        ]

    async def until(self, check: Any, talking: bytes = b"") -> None:
        """Send silence (or ``talking`` first) in real time until ``check()`` holds."""
        audio = talking
        while not check():
            chunk, audio = audio[:FRAME], audio[FRAME:]
            await self.ws.send(chunk.ljust(FRAME, b"\0"))
            await asyncio.sleep(0.02)


def _connect(node: Node, cookie: str | None, origin: str | None) -> Any:
    headers = {}
    if cookie is not None:
        headers["Cookie"] = f"callagent_session={cookie}"
    return websockets_client.connect(
        f"ws://{node.base}/dashboard/talk/socket", additional_headers=headers, origin=origin
    )


def _caller_pcm(text: str, tmp_path: Path) -> bytes:
    wav = flite_phone_wav(text, tmp_path / "caller.wav", rate=16000)
    samples, rate = soundfile.read(str(wav), dtype="float32")
    up = soxr.resample(samples, rate, RATE)
    return (np.clip(up, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"), reason="needs Debian's flite"
)
async def test_a_browser_call_reaches_the_agent_and_is_stored_as_a_test_call(
    node: Node, person: Person, tmp_path: Path
) -> None:
    await ready_agent(node.db, person.client_id)
    cookie, csrf = await _session(node, person)
    said = "Hello, I would like to know the price of your solar panels."
    caller = _caller_pcm(said, tmp_path)
    async with _connect(node, cookie, f"http://{node.base}") as ws:
        call = Call(ws)
        reader = asyncio.create_task(call.read())
        await ws.send(json.dumps({"type": "hello", "rate": RATE, "csrf": csrf}))
        # The greeting is spoken (audio arrives) and shown; then the caller speaks.
        await call.until(lambda: call.lines("agent"))
        assert call.audio_bytes > 16000  # at least half a second of the agent's voice
        await call.until(lambda: len(call.lines("agent")) >= 2, talking=caller)
        await ws.send(json.dumps({"type": "hangup"}))
        await reader
    started = next(e for e in call.events if e["type"] == "started")
    assert call.events[-1] == {"type": "ended", "call_id": started["call_id"]}
    heard = word_set(call.lines("caller")[0])
    assert {"price", "solar", "panels"} & heard, call.lines("caller")

    stored = await calls.get_call(node.db, person.client_id, uuid.UUID(started["call_id"]))
    assert stored.call_type == CallType.TEST
    assert stored.status == CallStatus.COMPLETED
    assert stored.customer_name == "Browser test"
    speakers = [turn.speaker for turn in stored.transcript]
    assert speakers[:3] == ["agent", "caller", "agent"], stored.transcript
    assert stored.transcript[1].text == call.lines("caller")[0]
    # Its post-call analysis is queued like any answered call's (docs/analysis.md).
    async with node.db.read() as session:
        job = await session.scalar(
            select(CallAnalysisJob.call_id).where(CallAnalysisJob.call_id == stored.id)
        )
    assert job == stored.id


async def test_without_a_session_or_from_another_site_the_socket_is_refused(
    node: Node, person: Person
) -> None:
    await ready_agent(node.db, person.client_id)
    cookie, _csrf = await _session(node, person)
    for who, origin in [
        (None, f"http://{node.base}"),  # no session
        ("not-a-session", f"http://{node.base}"),  # a made-up cookie
        (cookie, "http://evil.example"),  # cross-site WebSocket hijacking
        (cookie, None),  # no Origin at all: not a page of this site
    ]:
        with pytest.raises(websockets_exceptions.InvalidStatus) as refused:
            async with _connect(node, who, origin):
                pass
        assert refused.value.response.status_code == 403, (who, origin)


async def test_a_hello_without_the_pages_token_is_refused(node: Node, person: Person) -> None:
    await ready_agent(node.db, person.client_id)
    cookie, _csrf = await _session(node, person)
    async with _connect(node, cookie, f"http://{node.base}") as ws:
        await ws.send(json.dumps({"type": "hello", "rate": RATE, "csrf": "guessed"}))
        await ws.wait_closed()
    assert ws.close_code == 4403
    assert "CSRF" in (ws.close_reason or "")
    listed = await calls.list_calls(node.db, person.client_id)
    assert not listed.items  # no call was started, nothing stored


async def test_a_bad_frame_ends_only_that_call(node: Node, person: Person) -> None:
    await ready_agent(node.db, person.client_id)
    cookie, csrf = await _session(node, person)
    origin = f"http://{node.base}"
    async with _connect(node, cookie, origin) as good, _connect(node, cookie, origin) as bad:
        calls_ = [Call(good), Call(bad)]
        readers = [asyncio.create_task(c.read()) for c in calls_]
        for ws in (good, bad):
            await ws.send(json.dumps({"type": "hello", "rate": RATE, "csrf": csrf}))
        await calls_[1].until(lambda: calls_[1].audio_bytes > 0)
        await bad.send(b"\x01\x02\x03")  # 3 bytes: not 16-bit PCM
        await readers[1]
        assert bad.close_code == 1003
        assert "16-bit PCM" in (bad.close_reason or "")
        # The other call goes on: the agent keeps talking to it.
        before = calls_[0].audio_bytes
        await calls_[0].until(lambda: calls_[0].audio_bytes > before + 32000)
        assert not good.close_code
        await good.send(json.dumps({"type": "hangup"}))
        await readers[0]
    assert good.close_code == 1000


def _fake_microphone(text: str, tmp_path: Path) -> Path:
    """What chromium's fake microphone plays (in a loop): the caller waits out the greeting,
    says ``text``, and then is quiet long enough for the agent to answer."""
    wav = flite_phone_wav(text, tmp_path / "words.wav", rate=16000)
    words, rate = soundfile.read(str(wav), dtype="float32")
    quiet = np.zeros(rate * 12, dtype=np.float32)
    path = tmp_path / "caller.wav"
    soundfile.write(str(path), np.concatenate([quiet, words, quiet, quiet]), rate, "PCM_16")
    return path


@pytest.mark.browser
@pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"), reason="needs Debian's flite"
)
async def test_talking_to_the_agent_in_chromium_with_a_fake_microphone(
    node: Node, person: Person, tmp_path: Path
) -> None:
    """The page itself: getUserMedia, the AudioWorklet, the WebSocket, playback and the live
    transcript, in Debian's chromium with a file as its microphone."""
    playwright_api = pytest.importorskip("playwright.async_api")
    chromium_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium_path is None:
        assert not os.environ.get("CI"), "CI must run the browser phone: install Debian's chromium"
        pytest.skip("needs Debian's chromium")
    await ready_agent(node.db, person.client_id)
    microphone = _fake_microphone("I would like to know the price of your solar panels.", tmp_path)
    base = f"http://{node.base}"
    errors: list[str] = []
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = await chromium.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            await page.goto(f"{base}/dashboard/login")
            await page.get_by_label("E-mail").fill(person.email)
            await page.get_by_label("Password").fill(person.password)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/dashboard/")
            await page.get_by_role("link", name="Talk to your agent").click()
            await page.get_by_role("button", name="Start the call").click()
            await page.get_by_role("status").filter(has_text="Connected").wait_for()
            transcript = page.locator("#phone-transcript")
            # The greeting, the caller's words, the agent's answer: real models, real time.
            await transcript.locator("li.turn.agent").nth(1).wait_for(timeout=120_000)
            caller = await transcript.locator("li.turn.caller").first.inner_text()
            answer = await transcript.locator("li.turn.agent").nth(1).inner_text()
            await page.get_by_role("button", name="Hang up").click()
            await page.get_by_role("status").filter(has_text="The call ended").wait_for()
        finally:
            await chromium.close()
    assert {"price", "solar", "panels"} & word_set(caller), caller
    assert answer.removeprefix("Agent").strip()
    assert not errors, errors
    listed = await calls.list_calls(node.db, person.client_id, call_type=CallType.TEST)
    assert [c.status for c in listed.items] == [CallStatus.COMPLETED]


async def test_a_browser_call_counts_against_the_nodes_capacity(node: Node, person: Person) -> None:
    await ready_agent(node.db, person.client_id)
    cookie, csrf = await _session(node, person)
    phone_calls = [uuid.uuid4(), uuid.uuid4()]
    for call_id in phone_calls:  # both lines taken by phone calls
        assert node.admission.admit(call_id, "audiosocket")
    try:
        async with _connect(node, cookie, f"http://{node.base}") as ws:
            call = Call(ws)
            reader = asyncio.create_task(call.read())
            await ws.send(json.dumps({"type": "hello", "rate": RATE, "csrf": csrf}))
            await reader
    finally:
        for call_id in phone_calls:
            node.admission.release(call_id)
    assert call.audio_bytes > 16000  # the busy prompt was played, then the call ended
    assert not call.lines("agent")  # no conversation
    assert node.admission.refused["browser"] == 1
    listed = await calls.list_calls(node.db, person.client_id, call_type=CallType.TEST)
    assert [(c.status, c.outcome) for c in listed.items] == [(CallStatus.FAILED, CallOutcome.BUSY)]
