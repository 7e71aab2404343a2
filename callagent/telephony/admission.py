"""Admission control: how many calls this node carries at once, and what a call beyond gets.

Every engine has one worker shared by all calls (docs/pipeline.md), so each call beyond what
the machine can serve makes every call slower: measured on a 2-core machine with the `default`
profile, 3 simultaneous calls pushed voice-to-voice p95 to 5-10 s and 4 broke the outbound
pacing (frame gap p99 45 ms). So a node takes at most ``routing.max_active_calls`` calls
(docs/telephony.md "Capacity"); a call beyond hears :class:`BusyPrompt` - fixed text,
rendered by the TTS once at start, no LLM - and is hung up, and start-call is refused while the
node is full.

One :class:`CallAdmission` per node counts AudioSocket and direct-SIP calls alike (the call
runner asks it for both) and the outbound calls start-call and the scheduler are placing: a
placement reserves a slot until its call connects (the reservation becomes the call's slot),
AMI reports that it was not answered, or :data:`RESERVATION_S` passed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Final

from callagent.store.errors import DomainError
from callagent.telephony.asterisk.call_tracker import (
    CallEnded,
    CallEvent,
    DialOutcome,
    OriginateResult,
)
from callagent.telephony.connection import CallConnection
from callagent.voice_pipeline.audio import resample
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import FRAME_MS, HangUpFrame, frame_bytes
from callagent.voice_pipeline.tts import TextToSpeech

log = logging.getLogger(__name__)

RESERVATION_S: Final = 180.0
"""Longest a start-call holds a slot for a call that never connects and of which AMI reports
nothing: ring time (``asterisk.originate_timeout_s``, at most 120 s) plus AMD's longest
analysis (5 s) with room to spare."""

TAIL_SILENCE_S: Final = 0.3
"""Silence after the busy prompt before the hang-up, so its last word is not cut."""

_MAX_LAG_S: Final = 0.04
"""The pacing rule of voice_pipeline/playback.py: resynchronise rather than burst."""


class AtCapacity(DomainError):
    """start-call refused: this node carries as many calls as it may (HTTP 503)."""

    code = "at_capacity"


class Reservation:
    """A slot start-call holds for the call it is placing (see :meth:`CallAdmission.reserve`)."""

    def __init__(self, admission: CallAdmission) -> None:
        self._admission = admission
        self.call_id: uuid.UUID | None = None
        self.done = False

    def bind(self, call_id: uuid.UUID) -> None:
        """The slot is for this call: its connection takes it over when it connects."""
        self.call_id = call_id

    def cancel(self) -> None:
        """Give the slot back (nothing was placed); does nothing once done."""
        self._admission._drop(self)


class CallAdmission:
    """The node's call count against its capacity (see the module docstring).

    ``admit`` / ``release`` bracket each call that connects; ``reserve`` holds a slot for a
    call start-call places. ``clock`` (monotonic seconds) dates reservations.
    """

    def __init__(self, capacity: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity: Final = capacity
        self._clock = clock
        self._live: set[uuid.UUID] = set()
        self._reserved: dict[Reservation, float] = {}
        self.refused: collections.Counter[str] = collections.Counter()
        """Calls turned away, by the way they came: ``audiosocket``, ``sip``, ``start_call``."""

    @property
    def active(self) -> int:
        """Calls connected and admitted right now."""
        return len(self._live)

    @property
    def reserved(self) -> int:
        """Slots start-call holds for calls being placed."""
        self._expire()
        return len(self._reserved)

    def status(self) -> dict[str, int]:
        """What ``/health`` shows (docs/telephony.md "Capacity")."""
        return {
            "max_active_calls": self.capacity,
            "active": self.active,
            "reserved": self.reserved,
            "refused": sum(self.refused.values()),
        }

    def admit(self, call_id: uuid.UUID, via: str) -> bool:
        """Take a call that just connected, or refuse it (False: the node is full).

        A call start-call reserved a slot for takes that slot, whatever the count: the node
        said yes to it already.
        """
        if call_id in self._live:
            return True
        for reservation in list(self._reserved):
            if reservation.call_id == call_id:
                self._drop(reservation)
                self._live.add(call_id)
                return True
        if self.active + self.reserved >= self.capacity:
            self.refused[via] += 1
            log.warning(
                "call %s refused: %d of %d calls live, %d being placed",
                call_id,
                self.active,
                self.capacity,
                len(self._reserved),
            )
            return False
        self._live.add(call_id)
        return True

    def release(self, call_id: uuid.UUID) -> None:
        """The call is over: its slot is free."""
        self._live.discard(call_id)

    @property
    def free(self) -> int:
        """Slots neither taken by a live call nor held for a call being placed."""
        return max(0, self.capacity - self.active - self.reserved)

    def reserve(self) -> Reservation:
        """A slot for a call start-call is about to place; :meth:`Reservation.bind` it to the
        call session's id once there is one. Raises :class:`AtCapacity` when the node is full."""
        reservation = self.try_reserve()
        if reservation is None:
            self.refused["start_call"] += 1
            raise AtCapacity(
                f"this node is at capacity: {self.active} of {self.capacity} calls live and "
                f"{len(self._reserved)} being placed (routing.max_active_calls = "
                f"{self.capacity}); try again when a call has ended"
            )
        return reservation

    def try_reserve(self) -> Reservation | None:
        """A slot for a call the scheduler is about to place, or None when the node is full.

        Not counted as a refusal: the scheduler's row waits for a later pass (docs/scheduler.md
        "Capacity"), nobody was turned away."""
        if self.active + self.reserved >= self.capacity:
            return None
        reservation = Reservation(self)
        self._reserved[reservation] = self._clock()
        return reservation

    def on_call_event(self, event: CallEvent) -> None:
        """AMI's word on a placed call (subscribe it to ``AmiClient``): a call that was not
        answered, or hung up before it connected, gives its reservation back."""
        unanswered = isinstance(event, OriginateResult) and event.outcome != DialOutcome.ANSWERED
        if unanswered or isinstance(event, CallEnded):
            for reservation in list(self._reserved):
                if reservation.call_id == event.call_id:
                    self._drop(reservation)

    def _drop(self, reservation: Reservation) -> None:
        reservation.done = True
        self._reserved.pop(reservation, None)

    def _expire(self) -> None:
        oldest = self._clock() - RESERVATION_S
        for reservation, since in list(self._reserved.items()):
            if since < oldest:
                log.info("a placement's slot lapsed (call %s never connected)", reservation.call_id)
                self._drop(reservation)


class BusyPrompt:
    """What a caller beyond capacity hears: ``text`` spoken by the TTS, rendered once.

    :meth:`prepare` renders it (``serve`` does so at start, so a refusal costs no TTS or LLM
    time while the node is full); :meth:`audio` gives it at a call's rate.
    """

    def __init__(self, tts: TextToSpeech, text: str) -> None:
        self.text: Final = text
        self._tts = tts
        self._pcm: bytes | None = None
        self._by_rate: dict[int, bytes] = {}
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Render the prompt with the TTS (in its worker thread), once."""
        async with self._lock:
            if self._pcm is None:
                chunks = [chunk async for chunk in self._tts.synthesize(self.text)]
                self._pcm = b"".join(chunks)
                log.info(
                    "busy prompt rendered: %.1f s of audio",
                    len(self._pcm) / 2 / self._tts.sample_rate,
                )

    async def audio(self, sample_rate: int) -> bytes:
        """The prompt as 16-bit mono PCM at ``sample_rate``, padded to whole 20 ms frames."""
        await self.prepare()
        assert self._pcm is not None
        if sample_rate not in self._by_rate:
            pcm = resample(self._pcm, self._tts.sample_rate, sample_rate)
            size = frame_bytes(sample_rate)
            self._by_rate[sample_rate] = pcm + bytes(-len(pcm) % size)
        return self._by_rate[sample_rate]


async def turn_away(connection: CallConnection, prompt: BusyPrompt, clock: Clock) -> None:
    """Play ``prompt`` to the caller, paced on the 20 ms clock (DESIGN.md "Contracts"), then
    hang up (AudioSocket: the 0x00 message; direct SIP: a BYE). The caller's frames are read
    and dropped meanwhile; a caller who hangs up first ends it early."""
    rate = connection.sample_rate
    size = frame_bytes(rate)
    pcm = await prompt.audio(rate) + bytes(round(TAIL_SILENCE_S * 1000 / FRAME_MS) * size)
    caller_gone = asyncio.Event()

    async def listen() -> None:
        async for frame in connection.frames():
            if isinstance(frame, HangUpFrame):
                break
        caller_gone.set()

    listener = asyncio.create_task(listen(), name="busy-listener")
    try:
        deadline = clock.now()
        for start in range(0, len(pcm), size):
            if caller_gone.is_set() or connection.closed:
                return
            await connection.send_audio(pcm[start : start + size])
            deadline += FRAME_MS / 1000
            if clock.now() - deadline > _MAX_LAG_S:
                deadline = clock.now()
            await clock.sleep_until(deadline)
        await connection.hang_up()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
