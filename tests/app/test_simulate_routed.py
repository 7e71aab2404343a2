"""``callagent call --simulate … --client`` (docs/telephony.md "Try your agent end to end"): a
client's inbound call on the real models of the ``ci`` profile, over a real AudioSocket TCP
connection from the loopback caller, announced, routed, stored, acted on and analysed by what
``callagent serve`` runs.

The caller speaks with flite's ``rms`` voice at 8 kHz through µ-law (tests/helpers/voices.py):
of flite's voices it is the one tiny.en transcribed word for word on every sentence here
(``awb`` heard "after free", ``kal`` "to model", ``slt`` "damn you call me").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.app.audio_files import read_caller_audio
from callagent.app.components import analysis_model, prepare
from callagent.app.serve import start_telephony
from callagent.app.simulate import RoutedCall, run_routed_call
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.conversation import AgentLines
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, TrainingCreate
from callagent.store.services import agents, calls, clients
from callagent.store.states import TrainingType
from callagent.telephony.asterisk.config import TRANSFER_CONTEXT, render_asterisk_config
from callagent.telephony.call_runner import VoiceEngines

from fakes.ami_simulator import AmiSimulator
from fakes.routing_rig import SECRET
from helpers import store_fixtures
from helpers.voices import flite_available, flite_phone_wav

pytestmark = [
    pytest.mark.real_models,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not flite_available() and not os.environ.get("CI"),
        reason="needs Debian's flite (make test installs it)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
ZONE = "America/New_York"
"""The agent's zone; the caller's +1 212 number is in it too (dialog/when.py reads it)."""


def caller_number() -> str:
    """A New York number no other test uses."""
    return "+1212555" + "".join(random.choice("0123456789") for _ in range(4))


def did() -> str:
    return "+4930" + "".join(random.choice("0123456789") for _ in range(8))


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        environ={"CALLAGENT_RECORDINGS": "false"},
        overrides={
            ("models", "profile"): "ci",
            ("models", "models_dir"): REPO / "models",
            ("database", "url"): store_fixtures.own_migrated_url("sqlite"),
        },
    )


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> tuple[VoiceEngines, AgentProfile]:
    return asyncio.run(prepare(settings))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database.url)
    yield database
    await database.dispose()


async def tenant(db: Database, number: str) -> tuple[uuid.UUID, str]:
    """A client of a solar installer whose agent answers ``number`` from 08:00 to 20:00 New
    York time; its id and API key."""
    created = await clients.create_client(db, "Acme Solar")
    await agents.setup_agent(
        db,
        created.client_id,
        AgentSetup(
            agent_name="Sam",
            timezone=ZONE,
            working_hours_start="08:00",
            working_hours_end="20:00",
            business_info={"company_name": "Acme Solar", "products": "rooftop solar panels"},
            phone_numbers=[number],
        ),
    )
    await agents.add_training(
        db,
        created.client_id,
        TrainingCreate(
            training_type=TrainingType.SCRIPT,
            training_content="Greet the caller on behalf of Acme Solar, answer questions about "
            "rooftop solar panels and offer a free demo at the caller's home. " + "w " * 200,
        ),
    )
    return created.client_id, created.api_key


def said(text: str, folder: Path, settings: Settings) -> bytes:
    """``text`` on a phone line (8 kHz µ-law), as Asterisk hands it over: at the dialplan's
    rate (``c(slin16)`` by default: 16 kHz)."""
    wav = flite_phone_wav(text, folder / f"{uuid.uuid4().hex}.wav", voice="rms")
    return read_caller_audio(wav, settings.asterisk.audiosocket_sample_rate())


def agent_lines(routed: RoutedCall) -> list[str]:
    return [t.text for t in routed.call.transcript if t.speaker == "agent"]


async def call(
    settings: Settings,
    loaded: tuple[VoiceEngines, AgentProfile],
    client_id: uuid.UUID,
    caller: str,
    utterances: list[bytes],
    *,
    analyse: bool = False,
) -> RoutedCall:
    engines, profile = loaded
    return await run_routed_call(
        settings,
        utterances,
        client_id=client_id,
        caller_number=caller,
        analyse=analyse,
        engines=engines,
        profile=profile,
        model=analysis_model(settings) if analyse else None,
        final_wait_s=3.0,
        # The ci model answers within a second or two on a quiet machine; on 2 shared cores
        # its first token was seen to take over 10 s.
        max_wait_for_agent_s=60.0,
    )


async def test_please_dont_call_me_again_sets_do_not_call_and_start_call_is_refused(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    client_id, api_key = await tenant(db, did())
    caller = caller_number()
    routed = await call(
        settings,
        loaded,
        client_id,
        caller,
        [said("Please don't call me again.", tmp_path, settings)],
    )
    app = create_app(lambda: {}, ApiState(db=db))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
    async with httpx.AsyncClient(transport=transport, base_url="http://callagent") as api:
        refused = await api.post(
            "/api/agents/ai/start-call/",
            json={"phone_number": caller, "ignore_working_hours": True},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert routed.result.hung_up_by == "agent"
    assert routed.customer is not None
    assert routed.customer.phone_number == caller
    assert routed.customer.do_not_call
    assert [(a["type"], a["result"]) for a in routed.call.actions_taken] == [
        ("set_do_not_call", "done")
    ]
    assert agent_lines(routed)[-1] == AgentLines().do_not_call
    assert refused.status_code == 409, refused.text
    assert "do_not_call" in refused.text or "do-not-call" in refused.text


async def test_after_the_hang_up_the_analysis_fills_the_call_and_the_customer(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    client_id, _ = await tenant(db, did())
    routed = await call(
        settings,
        loaded,
        client_id,
        caller_number(),
        [said("Hi, I saw your ad. How much do the solar panels cost?", tmp_path, settings)],
        analyse=True,
    )
    assert routed.analysis == "done"
    assert routed.call.analysis is not None
    assert routed.call.analyzed_at is not None
    assert routed.call.outcome is not None
    assert routed.call.conversation_notes
    assert routed.customer is not None
    assert routed.customer.last_outcome == routed.call.outcome
    (memory,) = routed.customer.conversation_memory  # what the next call's prompt reads
    assert memory["call_id"] == str(routed.call.id)
    assert memory["summary"] == routed.call.conversation_notes[:300]


def tomorrow_at(hour: int, zone: ZoneInfo) -> dt.datetime:
    today = dt.datetime.now(zone).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(hour), tzinfo=zone)


def window_opening(moment: dt.datetime) -> dt.datetime:
    """``moment`` (15:00 local), or the calling window's next opening when it falls on a
    Sunday: the legal window is 08:00-21:00 Monday to Saturday in the customer's zone
    (docs/scheduler.md, "Dial-time rules") and this agent works 08:00-20:00 in that same zone,
    so after a Sunday the window opens on Monday at 08:00."""
    if moment.weekday() != 6:
        return moment
    return moment.replace(hour=8) + dt.timedelta(days=1)


async def test_call_me_back_tomorrow_after_three_schedules_a_callback_and_says_so(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    zone = ZoneInfo(ZONE)
    requested = tomorrow_at(15, zone)
    expected = window_opening(requested)
    client_id, _ = await tenant(db, did())
    routed = await call(
        settings,
        loaded,
        client_id,
        caller_number(),
        [said("I'm busy right now. Call me back tomorrow after three.", tmp_path, settings)],
    )
    assert routed.customer_zone == ZONE
    (callback,) = routed.callbacks
    assert callback.scheduled_at.astimezone(zone) == expected
    assert [a["type"] for a in routed.call.actions_taken] == ["schedule_callback"]
    # A moved time is said with the reason (dialog/conversation.py, AgentLines.callback_moved).
    confirmation = AgentLines().callback_moved if expected != requested else AgentLines().callback
    assert any(confirmation.split("{")[0] in line for line in agent_lines(routed))


def next_weekday(weekday: int, hour: int, zone: ZoneInfo) -> dt.datetime:
    today = dt.datetime.now(zone).date()
    ahead = (weekday - today.weekday()) % 7 or 7
    return dt.datetime.combine(today + dt.timedelta(days=ahead), dt.time(hour), tzinfo=zone)


async def test_yes_a_demo_next_tuesday_at_two_books_the_demo(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    zone = ZoneInfo(ZONE)
    client_id, _ = await tenant(db, did())
    routed = await call(
        settings,
        loaded,
        client_id,
        caller_number(),
        [
            said("Hi, I'm interested in solar panels for my house.", tmp_path, settings),
            said("Yes, a demo next Tuesday at two.", tmp_path, settings),
        ],
    )
    booked = [c for c in routed.callbacks if c.expected_outcome == "demo"]
    assert [a["type"] for a in routed.call.actions_taken] == ["book_appointment"]
    (demo,) = booked
    # "next Tuesday" is the coming Tuesday (or a week later: both readings are common).
    coming = next_weekday(1, 14, zone)
    assert demo.scheduled_at.astimezone(zone) in (coming, coming + dt.timedelta(days=7))
    assert any("booked the demo for" in line for line in agent_lines(routed))


def with_asterisk(settings: Settings, number: str, audiosocket_port: int) -> Settings:
    """``settings`` with AMI configured: Asterisk answers ``number``, "sales" is on the
    transfer allow-list, and the AudioSocket listener is on ``audiosocket_port``."""
    env = {
        "CALLAGENT_AMI_SECRET": SECRET,
        "CALLAGENT_TRUNK_HOST": "sip.example.net",
        "CALLAGENT_TRUNK_USERNAME": "u1",
        "CALLAGENT_TRUNK_PASSWORD": "p1",
        "CALLAGENT_DIDS": number,
        "CALLAGENT_TRANSFER_TARGETS": "sales=+4930111",
    }
    asterisk = load_settings(environ=env).asterisk
    network = msgspec.structs.replace(settings.network, audiosocket_port=audiosocket_port)
    return msgspec.structs.replace(settings, asterisk=asterisk, network=network)


@contextlib.asynccontextmanager
async def simulated_asterisk(settings: Settings) -> AsyncIterator[tuple[Settings, AmiSimulator]]:
    """The AMI simulator on the configuration rendered from ``settings``, and ``settings``
    pointing AMI at it."""
    files = render_asterisk_config(
        settings.asterisk, audiosocket_port=settings.network.audiosocket_port
    )
    async with AmiSimulator(
        manager_conf=files["manager.conf"], extensions_conf=files["extensions.conf"]
    ) as sim:
        asterisk = msgspec.structs.replace(settings.asterisk, ami_port=sim.port)
        yield msgspec.structs.replace(settings, asterisk=asterisk), sim


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_person_asked_for_is_handed_over_through_ami_to_the_allow_listed_target(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    """What ``serve`` does with an inbound call Asterisk (the AMI simulator) carries: the
    agent says it puts the caller through, and AMI's Redirect takes the caller's channel to the
    allow-listed target. (A simulated call has no Asterisk channel to redirect: the next test.)"""
    number = did()
    client_id, _ = await tenant(db, number)
    engines, profile = loaded
    async with simulated_asterisk(with_asterisk(settings, number, free_port())) as (ami, sim):
        telephony = await start_telephony(ami, db, engines, profile)
        try:
            assert telephony.ami is not None
            await telephony.ami.wait_connected(timeout_s=5)
            channel = await sim.inbound_call(
                number,
                caller_number(),
                (said("Let me talk to a person.", tmp_path, ami),),
                pause_after_agent_s=0.8,
                max_wait_for_agent_s=60.0,
                # Told "please hold", the caller holds: the hand-over is sent hang_up_grace_s
                # (0.3 s) after the line's last frame, and a caller hanging up 0.5 s after it
                # (the simulator's default) beat the Redirect on 2 loaded cores.
                final_wait_s=3.0,
            )
        finally:
            await telephony.close()
    assert channel.call_id is not None
    detail = await calls.get_call(db, client_id, channel.call_id)
    (redirect,) = [a for a in sim.actions if a.get("Action") == "Redirect"]
    assert (redirect.get("Context"), redirect.get("Exten")) == (TRANSFER_CONTEXT, "sales")
    assert detail.transferred_to == "sales"
    assert [(a["type"], a["target"]) for a in detail.actions_taken] == [("transfer", "sales")]
    spoken = [t.text for t in detail.transcript if t.speaker == "agent"]
    assert spoken[-1] == AgentLines().transfer


async def test_with_ami_a_simulated_call_is_announced_to_ami_and_its_hand_over_refused_there(
    settings: Settings, loaded: tuple[VoiceEngines, AgentProfile], db: Database, tmp_path: Path
) -> None:
    """With AMI configured the simulated call is AMI's like any inbound call: its hand-over
    goes to AMI - which has no channel of the call to move, so the call record says the
    transfer failed, and Asterisk was sent nothing."""
    number = did()
    client_id, _ = await tenant(db, number)
    async with simulated_asterisk(with_asterisk(settings, number, 0)) as (ami, sim):
        routed = await call(
            ami,
            loaded,
            client_id,
            caller_number(),
            [said("Let me talk to a person.", tmp_path, ami)],
        )
    assert routed.call.did == number
    assert agent_lines(routed)[-1] == AgentLines().transfer
    decided, outcome = routed.call.actions_taken
    assert (decided["type"], decided["target"]) == ("transfer", "sales")
    assert outcome["result_detail"] == "transfer to sales failed: AmiError"
    assert routed.call.transferred_to == ""
    assert not [a for a in sim.actions if a.get("Action") in ("Redirect", "BlindTransfer")]
