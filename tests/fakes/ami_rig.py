"""An AMI test rig: callagent's AMI client and dialer logged in to the AMI simulator, which runs
the configuration rendered from the settings, with calls connected to a real AudioSocket server.

The default call handler, :class:`ToneAgent`, answers each caller turn with a tone. Used by the
tests of the AMI client (tests/telephony/asterisk/test_ami.py) and of the call placer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from callagent.settings import Settings, load_settings
from callagent.telephony.asterisk.ami import AmiClient, AmiDialer, Backoff
from callagent.telephony.asterisk.call_tracker import CallEvent
from callagent.telephony.asterisk.config import render_asterisk_config
from callagent.telephony.asterisk.loopback_caller import rms
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.voice_pipeline.clock import MonotonicClock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, frame_bytes

from fakes.ami_simulator import AmiSimulator, Callee

SECRET = "ami-secret-0123456789"


NUMBER = "+4930555000"


FAST = Backoff(initial_s=0.05, max_s=0.2)


def settings_for(audiosocket_port: int, **env: str) -> Settings:
    return load_settings(
        environ={
            "CALLAGENT_AMI_SECRET": SECRET,
            "CALLAGENT_TRUNK_HOST": "sip.example.net",
            "CALLAGENT_TRUNK_USERNAME": "u1",
            "CALLAGENT_TRUNK_PASSWORD": "p1",
            "CALLAGENT_DIDS": "+4930123456",
            "CALLAGENT_TRANSFER_TARGETS": "sales=+4930111,support=+4930222",
            "CALLAGENT_AUDIOSOCKET_PORT": str(audiosocket_port),
            **env,
        }
    )


class ToneAgent:
    """A trivial AudioSocket call handler: once the caller's audio flows it says a 0.3 s tone,
    and again after each caller turn (loud audio, then 0.2 s of quiet); silence in between keeps
    the line alive. It records what each call delivered."""

    TONE_FRAMES = 15
    QUIET_FRAMES = 10

    def __init__(self) -> None:
        self.calls: dict[uuid.UUID, dict[str, object]] = {}

    async def __call__(self, conn: AudioSocketConnection) -> None:
        record: dict[str, object] = {"frames": 0, "digits": [], "rate": None}
        self.calls[conn.call_id] = record
        to_say = [0]  # tone frames still to send
        speaker: asyncio.Task[None] | None = None
        quiet = 0
        heard_speech = False
        try:
            async for frame in conn.frames():
                if isinstance(frame, DtmfFrame):
                    record["digits"].append(frame.digit)  # type: ignore[attr-defined]
                    continue
                if not isinstance(frame, AudioFrame):
                    continue
                record["frames"] = int(record["frames"]) + 1  # type: ignore[call-overload]
                record["rate"] = frame.sample_rate
                if speaker is None:  # greet once the caller's rate is known
                    to_say[0] = self.TONE_FRAMES
                    speaker = asyncio.create_task(self._speak(conn, frame.sample_rate, to_say))
                if rms(frame.pcm) > 1000:
                    heard_speech, quiet = True, 0
                elif heard_speech:
                    quiet += 1
                    if quiet == self.QUIET_FRAMES:
                        heard_speech = False
                        to_say[0] = self.TONE_FRAMES
        finally:
            if speaker is not None:
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker

    @staticmethod
    async def _speak(conn: AudioSocketConnection, rate: int, to_say: list[int]) -> None:
        tone = struct.pack("<hh", 4000, -4000) * (frame_bytes(rate) // 4)
        silence = bytes(frame_bytes(rate))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in itertools.count(1):
            if to_say[0] > 0:
                to_say[0] -= 1
                await conn.send_audio(tone)
            else:
                await conn.send_audio(silence)
            await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))


@dataclass
class Rig:
    """AudioSocket server + AMI simulator on the rendered config + AMI client and dialer."""

    settings: Settings
    agent: ToneAgent
    server: AudioSocketServer
    sim: AmiSimulator
    client: AmiClient
    dialer: AmiDialer
    events: list[CallEvent] = field(default_factory=list)

    def of(self, call_id: uuid.UUID) -> list[CallEvent]:
        return [e for e in self.events if e.call_id == call_id]

    async def wait_for(self, predicate: Callable[[], object], timeout_s: float = 8.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110 - polls state of several components
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def rig(
    *,
    callees: dict[str, Callee] | None = None,
    handler: Callable[[AudioSocketConnection], Awaitable[None]] | None = None,
    manager_conf_edit: Callable[[str], str] = lambda text: text,
    secret: str = SECRET,
    **env: str,
) -> AsyncIterator[Rig]:
    agent = ToneAgent()
    # The real call runner in these tests runs on the real clock too; every call has the
    # rate the rendered dialplan fixes.
    rate = settings_for(0, **env).asterisk.audiosocket_sample_rate()
    async with AudioSocketServer(
        handler or agent, "127.0.0.1", 0, clock=MonotonicClock(), sample_rate=rate
    ) as server:
        settings = settings_for(server.port, **env)
        files = render_asterisk_config(settings.asterisk, audiosocket_port=server.port)
        sim = AmiSimulator(
            manager_conf=manager_conf_edit(files["manager.conf"]),
            extensions_conf=files["extensions.conf"],
            callees=callees or {},
        )
        async with sim:
            client = AmiClient(
                "127.0.0.1", sim.port, "callagent", secret, backoff=FAST, ping_interval_s=0.5
            )
            dialer = AmiDialer.from_settings(client, settings.asterisk)
            r = Rig(settings, agent, server, sim, client, dialer)
            client.subscribe(r.events.append)
            async with client:
                yield r
