"""A loopback caller: places one scripted call to an AudioSocket server, as Asterisk's
``AudioSocket()`` would.

Used by ``callagent call --simulate`` and by tests, so the agent can be exercised end to end
without a telephone. It behaves like Asterisk 22 was measured to (DESIGN.md "Contracts" and
"Known traps"):

* it connects (giving up after 2 s, like ``res_audiosocket.c``), sends the UUID message first,
  then an unbroken stream of 20 ms audio frames for the whole call - the caller's speech or
  silence - paced on absolute deadlines of an injected clock, so it neither drifts nor, with a
  :class:`~callagent.voice_pipeline.clock.FakeClock`, waits in real time;
* it plays whatever the server sends the moment it arrives, without a buffer: the agent's audio is
  laid on the call timeline at the 20 ms tick it arrived in. Audio sent ahead of time cannot be
  played ahead, so it is laid right after the audio before it, and how far ahead it ran is
  reported as :attr:`LoopbackCallResult.agent_max_lead_s` (DESIGN.md: at most a frame or two);
* it hangs up by closing the socket, never with 0x00; and it hangs up, logging why, when the server
  sends 0x00, closes, or sends anything but audio and hang-up.

Asterisk's 2-second inactivity rule (it hangs up when *neither* side sent anything for 2 s) never
fires here, because this caller, like Asterisk, sends a frame every 20 ms; so it is not emulated.

The caller is a polite human: before each utterance it waits until the agent has spoken and then
been silent for ``pause_after_agent_s`` (or ``max_wait_for_agent_s`` passed), and after the last
one it waits for the agent's answer the same way before hanging up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np

from callagent.telephony.asterisk.audiosocket import (
    FRAME_DURATION_S,
    SAMPLE_RATE_AUDIO_KINDS,
    Audio,
    AudioSocketProtocol,
    AudioSocketRole,
    CallStarted,
    Dtmf,
    HangUp,
    ProtocolError,
)
from callagent.voice_pipeline.clock import Clock, MonotonicClock
from callagent.voice_pipeline.frames import DTMF_DIGITS, frame_bytes

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 2.0
"""``res_audiosocket.c`` gives up connecting after MAX_CONNECT_TIMEOUT_MSEC = 2000."""

READ_CHUNK: Final = 16_384
"""Bounded reads, as on the server side (DESIGN.md practice 2)."""

DTMF_TONE_FRAMES: Final = 5
"""A key press lasts 100 ms; Asterisk reports the digit when the key is released."""

DTMF_GAP_FRAMES: Final = 5
"""100 ms between two key presses."""

DEFAULT_SPEECH_RMS: Final = 300.0
"""RMS (16-bit scale, about -40 dBFS) above which a received frame counts as agent speech; an
idle agent sends silence or comfort noise well below it."""


@dataclass(frozen=True)
class Interruption:
    """A caller utterance that does not wait its turn: the caller starts speaking once the
    agent has been talking for ``after_agent_speech_s`` (a barge-in)."""

    pcm: bytes = field(repr=False)
    after_agent_speech_s: float = 1.0


@dataclass(frozen=True)
class LoopbackCallResult:
    """What a simulated call sounded like.

    ``caller_pcm`` and ``agent_pcm`` are 16-bit mono PCM at ``sample_rate`` on one timeline:
    byte ``i`` of both is the same instant, both start at the first 20 ms tick and have the same
    length, so they make a 2-channel recording (:meth:`write_wav`: caller left, agent right).
    """

    call_id: uuid.UUID
    sample_rate: int
    caller_pcm: bytes = field(repr=False)
    agent_pcm: bytes = field(repr=False)
    hung_up_by: Literal["caller", "agent"]
    duration_s: float
    agent_max_lead_s: float = 0.0
    """Most audio the agent had sent ahead of the call's clock; Asterisk would have garbled it."""
    error: str | None = None
    """Why the call ended, if the server broke the protocol (the call then ends as "agent")."""
    agent_arrivals_s: tuple[float, ...] = field(default=(), repr=False)
    """When each agent audio message arrived, in seconds since the call's first tick: how the
    server paced its audio on the wire (DESIGN.md "Contracts": one frame per 20 ms)."""

    def stereo_pcm(self) -> bytes:
        """Interleaved 2-channel PCM: caller left, agent right."""
        caller = np.frombuffer(self.caller_pcm, dtype="<i2")
        agent = np.frombuffer(self.agent_pcm, dtype="<i2")
        return np.column_stack((caller, agent)).astype("<i2").tobytes()

    def write_wav(self, path: str | Path) -> None:
        """Write the call as a 2-channel 16-bit wav file: caller left, agent right."""
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.stereo_pcm())


def rms(pcm: bytes) -> float:
    """Root mean square of 16-bit little-endian PCM (0.0 for no samples)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


async def simulate_call(
    host: str,
    port: int,
    utterances: Sequence[bytes | str | Interruption],
    *,
    sample_rate: int = 8_000,
    call_id: uuid.UUID | None = None,
    clock: Clock | None = None,
    pause_after_agent_s: float = 0.8,
    max_wait_for_agent_s: float = 20.0,
    final_wait_s: float = 2.0,
    speech_rms: float = DEFAULT_SPEECH_RMS,
) -> LoopbackCallResult:
    """Call the AudioSocket server at ``host``:``port`` and play ``utterances`` as the caller.

    Each utterance is ``bytes`` of 16-bit mono PCM at ``sample_rate`` (the call's rate: 8 kHz is
    what ``AudioSocket()`` sends, 16 kHz what ``c(slin16)`` gives), or a ``str`` of DTMF keys
    pressed in turn, e.g. ``"12#"`` (one DTMF message per key, at its release, while the audio
    stream carries silence), or an :class:`Interruption` that talks over the agent. Raises
    ``ValueError`` for an unsupported rate or a bad utterance and
    ``OSError`` / ``TimeoutError`` if the server cannot be reached.
    """
    if sample_rate not in SAMPLE_RATE_AUDIO_KINDS:
        raise ValueError(f"AudioSocket has no audio kind for {sample_rate} Hz")
    for item in utterances:
        if isinstance(item, str):
            if not item or set(item) - DTMF_DIGITS:
                raise ValueError(f"{item!r} is not a string of DTMF keys")
        elif len(item.pcm if isinstance(item, Interruption) else item) % 2:
            raise ValueError("utterance PCM must have an even number of bytes")
    call = _LoopbackCall(
        utterances=list(utterances),
        sample_rate=sample_rate,
        call_id=call_id or uuid.uuid4(),
        clock=clock or MonotonicClock(),
        pause_after_agent_s=pause_after_agent_s,
        max_wait_for_agent_s=max_wait_for_agent_s,
        final_wait_s=final_wait_s,
        speech_rms=speech_rms,
    )
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        return await call.run(reader, writer)
    finally:
        # Real Asterisk hangs up by closing the socket (DESIGN.md "Contracts"): no 0x00.
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


class _LoopbackCall:
    """State of one simulated call: the caller's script and the agent's timeline."""

    def __init__(
        self,
        *,
        utterances: list[bytes | str | Interruption],
        sample_rate: int,
        call_id: uuid.UUID,
        clock: Clock,
        pause_after_agent_s: float,
        max_wait_for_agent_s: float,
        final_wait_s: float,
        speech_rms: float,
    ) -> None:
        self.utterances = utterances
        self.sample_rate = sample_rate
        self.call_id = call_id
        self.clock = clock
        self.pause_after_agent_s = pause_after_agent_s
        self.max_wait_for_agent_s = max_wait_for_agent_s
        self.final_wait_s = final_wait_s
        self.speech_rms = speech_rms
        self.frame_bytes = frame_bytes(sample_rate)
        self.bytes_per_s = sample_rate * 2
        self.protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
        self.t0 = 0.0
        self.caller = bytearray()
        self.agent = bytearray()
        self.agent_max_lead = 0
        self.agent_arrivals: list[float] = []
        # Call time at which the agent's last speech frame finished playing; None = not yet.
        self.agent_speech_end: float | None = None
        # Call time at which the agent's current (or last) stretch of speech began.
        self.agent_speech_start: float | None = None
        self.agent_gone = False
        self.error: str | None = None

    async def run(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> LoopbackCallResult:
        writer.write(self.protocol.send(CallStarted(self.call_id)))
        self.t0 = self.clock.now()
        reading = asyncio.create_task(self._read(reader))
        try:
            hung_up_by = await self._talk(writer)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        duration = self.clock.now() - self.t0
        length = max(len(self.caller), len(self.agent))
        logger.info("simulated call %s: %s hung up after %.2fs", self.call_id, hung_up_by, duration)
        return LoopbackCallResult(
            call_id=self.call_id,
            sample_rate=self.sample_rate,
            caller_pcm=bytes(self.caller.ljust(length, b"\0")),
            agent_pcm=bytes(self.agent.ljust(length, b"\0")),
            hung_up_by=hung_up_by,
            duration_s=duration,
            agent_max_lead_s=self.agent_max_lead / self.bytes_per_s,
            error=self.error,
            agent_arrivals_s=tuple(self.agent_arrivals),
        )

    # --- the caller's side --------------------------------------------------------------------

    async def _talk(self, writer: asyncio.StreamWriter) -> Literal["caller", "agent"]:
        """Send one frame per 20 ms tick until the script ends or the agent hangs up."""
        frames = self._script()
        tick = 0
        while True:
            # Absolute deadlines: a late tick is caught up, never shifts the ones after it.
            await self.clock.sleep_until(self.t0 + tick * FRAME_DURATION_S)
            if self.agent_gone:
                return "agent"
            try:
                frame, digit = next(frames)
            except StopIteration:
                return "caller"
            data = self.protocol.send(Audio(frame, self.sample_rate))
            if digit is not None:
                data += self.protocol.send(Dtmf(digit))
            try:
                writer.write(data)
                await writer.drain()
            except OSError as exc:
                logger.info("simulated call %s: connection lost: %r", self.call_id, exc)
                return "agent"
            self.caller += frame
            tick += 1

    def _script(self) -> Iterator[tuple[bytes, str | None]]:
        """The caller's frames, one per tick; read at the tick, so waits see the agent live."""
        silence = bytes(self.frame_bytes)
        heard_since = self.t0
        for item in self.utterances:
            if isinstance(item, Interruption):
                yield from self._wait_to_interrupt(heard_since, item.after_agent_speech_s, silence)
                item = item.pcm
            else:
                yield from self._wait_for_agent(heard_since, self.pause_after_agent_s, silence)
            if isinstance(item, str):
                for digit in item:
                    for _ in range(DTMF_TONE_FRAMES - 1):
                        yield silence, None
                    yield silence, digit
                    for _ in range(DTMF_GAP_FRAMES):
                        yield silence, None
            else:
                for start in range(0, len(item), self.frame_bytes):
                    # The caller's line streams whole frames: the last one is padded.
                    yield (
                        item[start : start + self.frame_bytes].ljust(self.frame_bytes, b"\0"),
                        None,
                    )
            # Only what the agent says after the caller finished answers the caller (an agent
            # that talked over the caller and stopped has not answered yet).
            heard_since = self.clock.now()
        yield from self._wait_for_agent(heard_since, self.final_wait_s, silence)

    def _wait_to_interrupt(
        self, heard_since: float, after_s: float, silence: bytes
    ) -> Iterator[tuple[bytes, None]]:
        """Silence until the agent has been talking for ``after_s`` (then the caller cuts in)."""
        started = self.clock.now()
        while self.clock.now() - started < self.max_wait_for_agent_s:
            begun = self.agent_speech_start
            if begun is not None and begun >= heard_since and self.clock.now() - begun >= after_s:
                return
            yield silence, None
        logger.info("simulated call %s: the agent never spoke; caller goes on", self.call_id)

    def _wait_for_agent(
        self, heard_since: float, silence_s: float, silence: bytes
    ) -> Iterator[tuple[bytes, None]]:
        """Silence until the agent spoke after ``heard_since`` and then kept quiet."""
        started = self.clock.now()
        while True:
            # The tolerance keeps float rounding of tick times from costing a whole tick.
            now = self.clock.now() + 1e-6
            end = self.agent_speech_end
            if end is not None and end > heard_since and now - end >= silence_s:
                return
            answering = end is not None and end > heard_since and now - end < silence_s
            # Only an agent that stays silent is given up on; one still answering is waited for.
            if now - started >= self.max_wait_for_agent_s and not answering:
                logger.info(
                    "simulated call %s: agent silent for %.1fs; caller goes on",
                    self.call_id,
                    self.max_wait_for_agent_s,
                )
                return
            yield silence, None

    # --- the agent's side ---------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Read everything the server sends, until it hangs up or breaks the protocol."""
        try:
            while True:
                try:
                    event = self.protocol.next_event()
                except ProtocolError as exc:
                    # Asterisk hangs up on anything but audio and 0x00 (seen on Asterisk 22).
                    logger.error(
                        "simulated call %s: %s; hanging up like Asterisk", self.call_id, exc
                    )
                    self.error = str(exc)
                    return
                if event is None:
                    try:
                        data = await reader.read(READ_CHUNK)
                    except OSError as exc:
                        logger.info("simulated call %s: connection lost: %r", self.call_id, exc)
                        return
                    self.protocol.receive_data(data)
                elif isinstance(event, HangUp):
                    logger.info("simulated call %s: the agent hung up", self.call_id)
                    return
                elif isinstance(event, Audio):
                    if event.sample_rate != self.sample_rate:
                        # Asterisk gets the rate it asked for; anything else is the server's bug.
                        self.error = (
                            f"server sent {event.sample_rate} Hz audio on a "
                            f"{self.sample_rate} Hz call"
                        )
                        logger.error("simulated call %s: %s; hanging up", self.call_id, self.error)
                        return
                    self.agent_arrivals.append(self.clock.now() - self.t0)
                    self._play(event.pcm)
        finally:
            self.agent_gone = True

    def _play(self, pcm: bytes) -> None:
        """Lay received audio on the timeline at the tick it arrived in."""
        tick = int((self.clock.now() - self.t0) / FRAME_DURATION_S + 1e-6)
        arrival = tick * self.frame_bytes
        start = max(arrival, len(self.agent))
        self.agent_max_lead = max(self.agent_max_lead, start - arrival)
        self.agent += bytes(start - len(self.agent))
        self.agent += pcm
        if rms(pcm) >= self.speech_rms:
            start_s = self.t0 + (len(self.agent) - len(pcm)) / self.bytes_per_s
            if self.agent_speech_end is None or start_s - self.agent_speech_end > 0.3:
                self.agent_speech_start = start_s  # a new stretch of agent speech begins
            self.agent_speech_end = self.t0 + len(self.agent) / self.bytes_per_s
