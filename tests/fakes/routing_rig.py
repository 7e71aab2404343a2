"""A whole telephony side for tests of DID and caller-id routing and per-call persistence: a
migrated database, the AMI simulator (:mod:`fakes.ami_simulator`) on the rendered Asterisk
configuration, the AMI client with its call placer and the call journals subscribed, and a real
AudioSocket server running the call runner with router and journals - on scripted STT / LLM /
TTS fakes, so a call takes seconds."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.dialog.agent_profile import DEFAULT_AGENT, AgentProfile
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, CallDetail, CallPage, TrainingCreate
from callagent.store.services import agents, calls, clients
from callagent.store.states import CallStatus, TrainingType
from callagent.telephony.admission import BusyPrompt, CallAdmission
from callagent.telephony.asterisk.ami import AmiClient, AmiDialer, Backoff
from callagent.telephony.asterisk.call_tracker import CallEvent
from callagent.telephony.asterisk.config import render_asterisk_config
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.telephony.asterisk.transfer import TransferAllowList
from callagent.telephony.call_actions import ActionParams
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.metrics import CallMetrics
from callagent.telephony.routing import CallRouter, ProfileCache, UnknownNumberPolicy
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.ami_simulator import AmiSimulator, Callee
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

SECRET = "ami-secret-0123456789"
CALLER = "+4917012345678"
FALLBACK = msgspec.structs.replace(DEFAULT_AGENT, greeting="Hello there.")
FAST = Backoff(initial_s=0.05, max_s=0.2)


def number() -> str:
    """A valid number no other test uses (numbers are unique across the installation and the
    test database is shared)."""
    return "+4930" + "".join(random.choice("0123456789") for _ in range(8))


@dataclass
class Tenant:
    """A client with a trained agent answering ``did``."""

    client_id: uuid.UUID
    did: str
    agent_name: str
    company: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(
    db: Database, agent_name: str, company: str, did: str | None = None
) -> Tenant:
    """A client whose agent (named, of ``company``) answers ``did`` and can place calls."""
    created = await clients.create_client(db, f"{company} (client)")
    did = did or number()
    await agents.setup_agent(
        db,
        created.client_id,
        AgentSetup(
            agent_name=agent_name,
            business_info={"company_name": company},
            phone_numbers=[did],
        ),
    )
    await agents.add_training(
        db,
        created.client_id,
        TrainingCreate(
            training_type=TrainingType.SCRIPT,
            training_content=f"Greet the caller on behalf of {company}. " + "w " * 200,
        ),
    )
    return Tenant(created.client_id, did, agent_name, company, created.api_key)


@dataclass
class Rig:
    """Everything of one test's telephony side."""

    db: Database
    settings: Settings
    sim: AmiSimulator
    ami: AmiClient
    dialer: AmiDialer
    placer: AmiCallPlacer
    journals: CallJournals
    profiles: ProfileCache
    server: AudioSocketServer
    stt: FakeSpeechToText
    tts: FakeTextToSpeech
    llm: FakeLanguageModel
    recordings: Path
    reports: list[CallReport] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)
    admission: CallAdmission | None = None
    metrics: CallMetrics | None = None

    async def wait_for(self, predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110 - polls state of several components
                await asyncio.sleep(0.01)

    async def wait_for_call(
        self,
        client_id: uuid.UUID,
        call_id: uuid.UUID,
        predicate: Callable[[CallDetail], bool],
        timeout_s: float = 10.0,
    ) -> CallDetail:
        """Poll the store until the call session satisfies ``predicate``."""
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    detail = await calls.get_call(self.db, client_id, call_id)
                except Exception:  # not there yet
                    detail = None
                if detail is not None and predicate(detail):
                    return detail
                await asyncio.sleep(0.02)

    async def ended(self, client_id: uuid.UUID, call_id: uuid.UUID) -> CallDetail:
        """The call once it is over and every write about it has landed: Asterisk's hang-up
        and the call runner's last write race, so both are waited for."""
        await self.wait_for_call(
            client_id,
            call_id,
            lambda d: (
                d.status in (CallStatus.COMPLETED, CallStatus.FAILED)
                and (d.hangup_cause is not None or d.outcome is not None)
            ),
        )
        await self.settled()
        return await calls.get_call(self.db, client_id, call_id)

    async def settled(self) -> None:
        """Wait until every journal has written what it was given."""
        await self.wait_for(lambda: len(self.journals) == 0)

    async def calls_of(self, client_id: uuid.UUID) -> CallPage:
        return await calls.list_calls(self.db, client_id)

    @contextlib.asynccontextmanager
    async def api(self, now: dt.datetime | None = None) -> AsyncIterator[httpx.AsyncClient]:
        """The REST API in this event loop (the placer lives here), with this rig's placer."""
        state = ApiState(db=self.db, placer=self.placer, admission=self.admission)
        if now is not None:
            state.clock = lambda: now
        app = create_app(lambda: {}, state)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
        async with httpx.AsyncClient(transport=transport, base_url="http://callagent") as client:
            yield client


@contextlib.asynccontextmanager
async def routing_rig(
    database_url: str,
    recordings: Path,
    *,
    callees: dict[str, Callee] | None = None,
    dids: Sequence[str] = (),
    transcripts: list[str] | None = None,
    replies: list[str] | None = None,
    unknown_number: UnknownNumberPolicy = "file_agent",
    fallback: AgentProfile = FALLBACK,
    ring_timeout_s: float = 5.0,
    retry_delays: Sequence[float] = (0.01,),
    capacity: int | None = None,
    **env: str,
) -> AsyncIterator[Rig]:
    """Start the rig; ``dids`` are the numbers the simulated Asterisk answers. With
    ``capacity`` the node takes at most that many calls at once, as ``serve`` wires it."""
    db = Database(database_url)
    clock = MonotonicClock()
    stt = FakeSpeechToText(clock, list(transcripts or []))  # type: ignore[arg-type]
    tts = FakeTextToSpeech(clock, seconds_per_word=0.05)  # type: ignore[arg-type]
    llm = FakeLanguageModel(clock, list(replies or []))  # type: ignore[arg-type]
    journals = CallJournals(db, retry_delays=retry_delays)
    profiles = ProfileCache(db, warm=llm.warm_up)
    reports: list[CallReport] = []
    admission = CallAdmission(capacity) if capacity is not None else None
    busy = BusyPrompt(tts, "Sorry, all our agents are busy. Goodbye.") if admission else None
    metrics = CallMetrics() if admission else None

    async def handler(connection: AudioSocketConnection) -> None:
        # The runner needs the router, the router the AMI client, the client the simulator,
        # and the simulator this server's port: the runner is made last.
        await runner(connection)

    # Every call has the rate the rendered dialplan fixes.
    rate = load_settings(environ=dict(env)).asterisk.audiosocket_sample_rate()
    async with AudioSocketServer(handler, "127.0.0.1", 0, clock=clock, sample_rate=rate) as server:
        settings = load_settings(
            environ={
                "CALLAGENT_AMI_SECRET": SECRET,
                "CALLAGENT_TRUNK_HOST": "sip.example.net",
                "CALLAGENT_TRUNK_USERNAME": "u1",
                "CALLAGENT_TRUNK_PASSWORD": "p1",
                "CALLAGENT_DIDS": ",".join(dids) or "+4930123456",
                "CALLAGENT_TRANSFER_TARGETS": "sales=+4930111",
                "CALLAGENT_AUDIOSOCKET_PORT": str(server.port),
                **env,
            }
        )
        files = render_asterisk_config(settings.asterisk, audiosocket_port=server.port)
        sim = AmiSimulator(
            manager_conf=files["manager.conf"],
            extensions_conf=files["extensions.conf"],
            callees=callees or {},
        )
        async with sim:
            ami = AmiClient(
                "127.0.0.1", sim.port, "callagent", SECRET, backoff=FAST, ping_interval_s=0.5
            )
            router = CallRouter(
                db,
                profiles,
                fallback=fallback,
                unknown_number=unknown_number,
                unknown_message="Sorry, this number is not in service.",
                ami=ami,
            )
            dialer = AmiDialer(
                ami,
                transfers=TransferAllowList(settings.asterisk.transfer_map()),
                ring_timeout_s=ring_timeout_s,
            )
            runner = CallRunner(
                VoiceEngines(stt, tts, llm),
                fallback,
                clock,
                on_call_finished=reports.append,
                recordings=recordings,
                router=router,
                journals=journals,
                # As serve wires it: a hand-over the agent decides goes through this AMI.
                actions=ActionParams(
                    transfer=dialer.transfer,
                    transfer_targets=tuple(settings.asterisk.transfer_map()),
                ),
                admission=admission,
                busy=busy,
                metrics=metrics,
            )
            rig = Rig(
                db=db,
                settings=settings,
                sim=sim,
                ami=ami,
                dialer=dialer,
                placer=AmiCallPlacer(dialer),
                journals=journals,
                profiles=profiles,
                server=server,
                stt=stt,
                tts=tts,
                llm=llm,
                recordings=recordings,
                reports=reports,
                admission=admission,
                metrics=metrics,
            )
            if admission is not None:
                ami.subscribe(admission.on_call_event)
            ami.subscribe(journals.on_call_event)
            ami.subscribe(rig.events.append)
            try:
                async with ami:
                    await ami.wait_connected(2)
                    yield rig
                    await server.close()  # calls end, their journals drain
            finally:
                await profiles.close()
                await journals.close()
                await db.dispose()


def statuses(page: CallPage) -> list[CallStatus]:
    return [item.status for item in page.items]
