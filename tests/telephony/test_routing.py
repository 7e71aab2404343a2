"""The call router without Asterisk (docs/telephony.md, "Routing"): direct-SIP calls name
their numbers, the embedded mode has none; profiles are cached per agent. A SIP-shaped call
runs end to end through the call runner over a real AudioSocket connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callagent.dialog.prompt import build_system_prompt
from callagent.dialog.purposes import CallPurpose
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.schemas import CustomerCreate, StartCall, TrainingCreate
from callagent.store.services import agents, calls, campaigns, customers, dial_queue
from callagent.store.services import telephony as store
from callagent.store.services.call_state import CallUpdate, apply_call_update
from callagent.store.states import CallStatus, TrainingType
from callagent.telephony.asterisk.call_tracker import AmiCallDirection, CallEnded, CallState
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.connection import AddressedCall, CallConnection
from callagent.telephony.routing import CallRouter, ProfileCache, e164
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.routing_rig import CALLER, FALLBACK, make_tenant, number
from helpers import store_fixtures
from helpers.audio import voice
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.own_migrated_url("sqlite")


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    yield database
    await database.dispose()


class Line:
    """A call connection with nothing on it (routing looks only at its ids)."""

    def __init__(self) -> None:
        self.call_id = uuid.uuid4()
        self.remote = "test"
        self.sample_rate = 16000
        self.closed = False

    async def frames(self) -> AsyncIterator[Any]:
        return
        yield

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def hang_up(self) -> None:
        self.closed = True


class SipLine(Line):
    """A direct-SIP call: it says which number was dialled and who calls (To / From)."""

    def __init__(self, dialed: str, caller: str) -> None:
        super().__init__()
        self.dialed = dialed
        self.caller = caller


class Warmth:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> None:
        self.prompts.append(prompt)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+4930123456", "+4930123456"),
        ("4930123456", "+4930123456"),  # as many trunks send it
        ("004930123456", "+4930123456"),
        (" +49 30 123456 ", "+4930123456"),
        ("030123456", None),  # national: which country?
        ("", None),
        ("anonymous", None),
    ],
)
def test_numbers_from_the_line_become_e164(raw: str, expected: str | None) -> None:
    assert e164(raw) == expected


async def test_a_sip_call_is_routed_by_its_numbers_and_profiles_are_cached(db: Database) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    warm = Warmth()
    profiles = ProfileCache(db, warm=warm)
    router = CallRouter(db, profiles, fallback=FALLBACK)
    line = SipLine(tenant.did.lstrip("+"), CALLER.lstrip("+"))
    assert isinstance(line, AddressedCall)
    route = await router.route(line)
    assert (route.kind, route.client_id, route.call_id) == ("agent", tenant.client_id, line.call_id)
    assert route.profile is not None
    assert route.profile.company == "Alpha Roofing"
    assert not route.via_ami  # the line reports its own keys
    detail = await calls.get_call(db, tenant.client_id, line.call_id)
    assert (detail.did, detail.phone_number, detail.status) == (
        tenant.did,
        CALLER,
        CallStatus.IN_PROGRESS,
    )
    again = await router.route(SipLine(tenant.did, CALLER))
    assert again.profile is route.profile  # cached: nothing changed
    assert profiles.builds == 1
    await agents.add_training(
        db,
        tenant.client_id,
        TrainingCreate(training_type=TrainingType.GOALS, training_content="Book the survey."),
    )
    changed = await router.route(SipLine(tenant.did, CALLER))
    assert changed.profile is not None
    assert changed.profile.goals == ["Book the survey."]
    assert profiles.builds == 2
    await profiles.close()
    assert len(warm.prompts) == 2  # each new profile's prompt warmed the LLM's prefix cache
    assert "Book the survey." in warm.prompts[1]


class AmiWithoutState:
    """An AMI client that announced nothing about the call (its state was lost, e.g. with a
    reconnect): the router falls back to the call session with the call's id."""

    async def wait_for_call(self, call_id: uuid.UUID, timeout_s: float = 2.0) -> None:
        return None


async def test_a_call_the_agent_placed_opens_by_asking_for_the_customer(db: Database) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    phone = number()
    await customers.create_customer(
        db, tenant.client_id, CustomerCreate(phone_number=phone, name="Jane Doe")
    )
    prepared = await calls.prepare_call(
        db,
        tenant.client_id,
        StartCall(
            phone_number=phone, purpose="follow up on the roof quote", ignore_working_hours=True
        ),
        utcnow(),
    )
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithoutState())  # type: ignore[arg-type]
    line = Line()
    line.call_id = prepared.call_id
    route = await router.route(line)
    assert (route.kind, route.direction, route.call_id) == ("agent", "outbound", line.call_id)
    assert route.greeting == (
        "Hello, this is Alma from Alpha Roofing, calling to follow up on the roof quote."
        " I'm an AI assistant. Am I speaking with Jane Doe?"
    )
    # Free text is what the call is about; an outbound call's default purpose is sales.
    assert route.purpose is CallPurpose.SALES_OUTREACH
    inbound = await router.route(SipLine(tenant.did, CALLER))
    assert inbound.greeting is None  # an answered call opens with the agent's own greeting
    assert inbound.purpose is None


async def test_a_named_call_purpose_reaches_the_dialog_and_its_words_the_opening(
    db: Database,
) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    phone = number()
    await customers.create_customer(
        db, tenant.client_id, CustomerCreate(phone_number=phone, name="Jane Doe")
    )
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithoutState())  # type: ignore[arg-type]
    openings = {}
    for purpose in ("customer_support", "renewal_reminder: your roof warranty"):
        prepared = await calls.prepare_call(
            db,
            tenant.client_id,
            StartCall(phone_number=phone, purpose=purpose, ignore_working_hours=True),
            utcnow(),
        )
        line = Line()
        line.call_id = prepared.call_id
        route = await router.route(line)
        openings[route.purpose] = (route.greeting, route.context or "")
    support, renewal = (
        openings[CallPurpose.CUSTOMER_SUPPORT],
        openings[CallPurpose.RENEWAL_REMINDER],
    )
    assert support[0] == (
        "Hello, this is Alma from Alpha Roofing, calling to check on your support request."
        " I'm an AI assistant. Am I speaking with Jane Doe?"
    )
    assert "customer_support" not in support[1]
    assert "calling about your roof warranty." in str(renewal[0])
    assert "Reason for this call: your roof warranty." in renewal[1]


class AmiWithState:
    """An AMI client that has this state for every call."""

    def __init__(self, state: CallState) -> None:
        self.state = state

    async def wait_for_call(self, call_id: uuid.UUID, timeout_s: float = 2.0) -> CallState:
        return self.state


async def test_only_call_ids_ami_announced_are_taken(db: Database) -> None:
    """Only Asterisk may talk to AudioSocket: a call id neither the dialplan nor an Originate of
    ours announced is refused - nothing is said, nothing stored - unless the settings say
    ``any``, when it is an unknown number as before."""
    stranger = Line()
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithoutState())  # type: ignore[arg-type]
    route = await router.route(stranger)
    assert (route.kind, route.call_id, route.profile) == ("refused", None, None)
    lenient = CallRouter(
        db,
        ProfileCache(db),
        fallback=FALLBACK,
        ami=AmiWithoutState(),  # type: ignore[arg-type]
        accept="any",
    )
    assert (await lenient.route(stranger)).kind == "file_agent"
    # Without AMI nothing can be announced (the embedded mode): every call is taken.
    assert (await CallRouter(db, ProfileCache(db), fallback=FALLBACK).route(stranger)).kind == (
        "file_agent"
    )


async def test_a_call_that_is_over_cannot_be_joined_again(db: Database) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    line = Line()
    ended = CallState(
        line.call_id,
        AmiCallDirection.INBOUND,
        number=tenant.did,
        caller=CALLER,
        ended=CallEnded(line.call_id, 16, "Normal Clearing"),
    )
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithState(ended))  # type: ignore[arg-type]
    assert (await router.route(line)).kind == "refused"
    # A placed call whose session is over, its AMI state forgotten: refused too.
    prepared = await calls.prepare_call(
        db,
        tenant.client_id,
        StartCall(phone_number=number(), ignore_working_hours=True),
        utcnow(),
    )
    await apply_call_update(
        db,
        tenant.client_id,
        prepared.call_id,
        CallUpdate(status=CallStatus.FAILED, failure_reason="test"),
        utcnow(),
    )
    placed = Line()
    placed.call_id = prepared.call_id
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithoutState())  # type: ignore[arg-type]
    assert (await router.route(placed)).kind == "refused"


async def test_calls_without_routing_information_get_the_file_agent(db: Database) -> None:
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, unknown_number="message")
    route = await router.route(Line())  # embedded mode: AudioSocket, no AMI
    assert (route.kind, route.profile, route.call_id) == ("file_agent", FALLBACK, None)
    unknown = await router.route(SipLine(number(), CALLER))
    assert (unknown.kind, unknown.call_id) == ("message", None)
    assert unknown.message


async def test_a_withheld_caller_is_answered_but_not_stored(db: Database) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK)
    route = await router.route(SipLine(tenant.did, "anonymous"))
    assert (route.kind, route.client_id, route.call_id) == ("agent", tenant.client_id, None)
    assert route.context is not None
    assert "no customer record" in route.context


async def test_routing_survives_a_database_outage(db: Database) -> None:
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK)

    @contextlib.asynccontextmanager
    async def down() -> AsyncIterator[Any]:
        raise OSError("connection refused")
        yield  # pragma: no cover

    db.write = down  # type: ignore[method-assign]
    db.read = down  # type: ignore[method-assign]
    route = await router.route(SipLine(number(), CALLER))
    assert (route.kind, route.reason) == ("file_agent", "routing failed")


class AsSip:
    """An AudioSocket connection dressed as a direct-SIP call (the SIP endpoint itself is
    tested with real peers in tests/telephony/sip)."""

    def __init__(self, connection: AudioSocketConnection, dialed: str, caller: str) -> None:
        self._connection = connection
        self.dialed = dialed
        self.caller = caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


async def test_a_direct_sip_call_is_stored_with_its_keys(db: Database, tmp_path: Path) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    clock = MonotonicClock()
    stt = FakeSpeechToText(clock, ["Is anybody there?"])  # type: ignore[arg-type]
    tts = FakeTextToSpeech(clock, seconds_per_word=0.05)  # type: ignore[arg-type]
    llm = FakeLanguageModel(clock, ["Yes, Alma here."])  # type: ignore[arg-type]
    journals = CallJournals(db)
    profiles = ProfileCache(db)
    reports: list[CallReport] = []
    runner = CallRunner(
        VoiceEngines(stt, tts, llm),
        FALLBACK,
        clock,
        on_call_finished=reports.append,
        recordings=tmp_path,
        router=CallRouter(db, profiles, fallback=FALLBACK),
        journals=journals,
    )

    async def handler(connection: AudioSocketConnection) -> None:
        line: CallConnection = AsSip(connection, tenant.did, CALLER)
        await runner(line)

    async with AudioSocketServer(handler, "127.0.0.1", 0, clock=clock, sample_rate=16000) as server:
        result = await simulate_call(
            "127.0.0.1",
            server.port,
            ["42", voice(0.6, 16000)],
            sample_rate=16000,
            pause_after_agent_s=0.3,
            final_wait_s=0.4,
            max_wait_for_agent_s=1.0,  # keys get no spoken answer: do not wait long for one
        )
    await journals.close()
    (report,) = reports
    detail = await calls.get_call(db, tenant.client_id, result.call_id)
    assert detail.dtmf == "42"  # no AMI here: the line's own DTMF is stored
    assert [t.speaker for t in detail.transcript] == ["agent", "caller", "agent"]
    assert detail.transcript[1].text == "Is anybody there?"
    assert detail.status == CallStatus.COMPLETED
    assert detail.recording_ref == report.recording
    (customer,) = (await customers.list_customers(db, tenant.client_id)).items
    assert customer.phone_number == CALLER
    assert await store.call_owner(db, result.call_id) == tenant.client_id


async def test_a_campaigns_purpose_and_script_reach_the_call_the_scheduler_placed(
    db: Database,
) -> None:
    # docs/campaigns.md: the campaign's purpose and script override go with each call it
    # places, into the call's context message - after the byte-stable prompt, per call.
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    phone = number()
    customer = await customers.create_customer(
        db, tenant.client_id, CustomerCreate(phone_number=phone, name="Jane Doe")
    )
    script = "Tell them the warranty extension is free for customers of more than five years."
    now = utcnow()
    campaign = await campaigns.create_campaign(
        db,
        tenant.client_id,
        campaigns.CampaignCreate(
            name="Warranty",
            call_purpose="renewal_reminder: your roof warranty",
            script_override=script,
        ),
        now,
    )
    await campaigns.add_contacts(
        db, tenant.client_id, campaign.id, campaigns.ContactsAdd(customer_ids=[customer.id]), now
    )
    await campaigns.start_campaign(db, tenant.client_id, campaign.id, now)
    claimed = [
        c
        for c in await dial_queue.claim_due(
            db, "node", utcnow(), lease=dt.timedelta(seconds=30), limit=20
        )
        if c.client_id == tenant.client_id
    ]
    taken = await dial_queue.take(
        db,
        claimed[0],
        "node",
        lambda _facts: dial_queue.Verdict("dial"),
        utcnow(),
        live_grace=dt.timedelta(seconds=90),
        wait=dt.timedelta(seconds=60),
    )
    assert taken.order is not None
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK, ami=AmiWithoutState())  # type: ignore[arg-type]
    line = Line()
    line.call_id = taken.order.call_id
    route = await router.route(line)
    assert route.purpose == CallPurpose.RENEWAL_REMINDER
    assert "calling about your roof warranty." in str(route.greeting)
    context = route.context or ""
    assert "Reason for this call: your roof warranty." in context
    assert f"Script for this call (follow it): {script}" in context
    assert route.profile is not None
    assert script not in build_system_prompt(route.profile, route.purpose)
