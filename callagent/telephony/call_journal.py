"""Persisting a call as it goes, without ever holding up its audio.

docs/telephony.md "Persistence as the call goes" lists what is written when.

Everything the store should learn about a call - its status, each finished turn, latency
figures, AMD's verdict, key presses, a hand-over, the hang-up cause, the recording, what the
agent did (an in-call action: do-not-call, a callback, …) - becomes a
small write queued on that call's :class:`CallJournal`. One writer task per call applies them in
order, each in its own short transaction (DESIGN.md practice 11: one session per write, ids not
ORM objects). The audio loop only appends to a queue; a database that is slow or down delays or
loses writes, never a frame, and a write that fails is logged and skipped: it never ends the
call.

Both sources of a call's events share the call's journal, so their writes are ordered:

* the call runner holds the journal for the length of the call (:meth:`CallJournals.hold`),
  reports status and, through :class:`JournalObserver` (the voice pipeline's
  ``PipelineObserver`` hook), every turn as it finishes;
* the AMI client's call events (:meth:`CallJournals.on_call_event`, subscribed with
  ``AmiClient.subscribe``) arrive by call id alone - an Originate that was busy never reaches
  a runner; the journal looks the call's client up once.

An inbound call's session is created only when the call runner has routed it, a moment after
AMI announced the call; what AMI reports meanwhile (a key the caller pressed at once, an early
hang-up) is kept for the call (bounded) and queued when the runner takes the call's journal,
or dropped when the call is not stored (:meth:`CallJournals.not_stored`).

A journal's writer ends when its queue is empty and nobody holds it, so finished calls leave no
task behind; :meth:`CallJournals.close` drains the rest at shutdown.

Every write is a sign of life of its call, and :meth:`CallJournals.heartbeat` is one for every
call this node holds: crash recovery settles only live calls without any for a grace period,
so a call another node runs is never taken for one whose node died (docs/telephony.md, "After a
crash").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from callagent.store.db import Database
from callagent.store.errors import DomainError
from callagent.store.models import utcnow
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import telephony as store
from callagent.store.services.call_state import (
    CallAction,
    CallUpdate,
    append_turns,
    apply_call_action,
    apply_call_update,
    touch_calls,
)
from callagent.store.states import CallOutcome, CallStatus
from callagent.telephony.asterisk.call_tracker import (
    AmdResult,
    CallAnswered,
    CallChannel,
    CallEnded,
    CallEvent,
    CallRinging,
    CallTransferred,
    DialOutcome,
    DtmfReceived,
    InboundCallStarted,
    OriginateResult,
)
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.pipeline import BargeIn, TurnRecord

log = logging.getLogger(__name__)

MAX_PENDING: Final = 512
"""Writes a journal queues before it drops new ones (a database down for minutes must not
grow memory without bound). A call writes a few per turn."""

RETRY_DELAYS_S: Final = (0.2, 1.0)
"""Pauses before retrying a write the database refused (then it is logged and dropped)."""

DRAIN_TIMEOUT_S: Final = 5.0
"""How long the end of a call (or shutdown) waits for its pending writes."""

MAX_LATENCY_TURNS: Final = 200

MAX_EARLY_CALLS: Final = 256
"""Announced calls not routed yet whose early AMI reports are kept; the oldest go beyond."""

MAX_EARLY_UPDATES: Final = 64
"""Early reports kept per call (the store keeps at most 64 keys of a call anyway)."""

EARLY_KEEP_S: Final = 60.0
"""How long early reports wait for their call's runner: routing takes ~2 s at most (the AMI
wait), so a call not taken by then never reached this node."""

#: How Asterisk's verdict on an Originate lands on the call session (docs/telephony.md
#: "Persistence as the call goes"): unreached calls end with that outcome; an answered one waits
#: for its conversation.
ORIGINATE_OUTCOMES: Final[dict[DialOutcome, tuple[CallStatus, CallOutcome]]] = {
    DialOutcome.BUSY: (CallStatus.COMPLETED, CallOutcome.BUSY),
    DialOutcome.NO_ANSWER: (CallStatus.COMPLETED, CallOutcome.NO_ANSWER),
    DialOutcome.CONGESTION: (CallStatus.FAILED, CallOutcome.FAILED),
    DialOutcome.FAILED: (CallStatus.FAILED, CallOutcome.FAILED),
}


@dataclass(frozen=True)
class _Turns:
    turns: list[TranscriptTurn]
    latency: dict[str, Any] | None


@dataclass(frozen=True)
class _Wake:
    """Wakes an idle writer so it notices it was released."""


_Write = CallUpdate | CallAction | _Turns | _Wake


def _name(write: _Write) -> str:
    if isinstance(write, _Turns):
        return f"{len(write.turns)} transcript turn(s)"
    if isinstance(write, CallAction):
        return f"the action {write.record.get('type', '?')}"
    return "a call update"


def update_for(event: CallEvent) -> CallUpdate | None:
    """What an AMI call event changes on its call session (None: nothing to store)."""
    match event:
        case CallChannel(channel=channel):
            return CallUpdate(telephony_channel=channel[:200])
        case CallRinging():
            return CallUpdate(status=CallStatus.RINGING)
        case CallAnswered():
            return CallUpdate(status=CallStatus.IN_PROGRESS)
        case OriginateResult(outcome=outcome, reason=reason, message=message, cause=cause):
            if outcome not in ORIGINATE_OUTCOMES:
                return None  # answered: CallAnswered moved the call on
            status, result = ORIGINATE_OUTCOMES[outcome]
            why = outcome.value.replace("_", " ")
            # Asterisk's Reason is often 0 whatever happened; the hang-up cause says more.
            codes = [f"Asterisk reason {reason}"] if reason is not None else []
            codes += [f"cause {cause}"] if cause is not None else []
            if codes:
                why += f" ({', '.join(codes)})"
            if message:
                why += f": {message}"
            return CallUpdate(status=status, outcome=result, failure_reason=why)
        case AmdResult(status=status, cause=cause):
            return CallUpdate(amd_status=status.value, amd_cause=cause[:100])
        case DtmfReceived(digit=digit):
            return CallUpdate(dtmf=digit)
        case CallTransferred(target=target):
            return CallUpdate(transferred_to=target)
        case CallEnded(cause=cause, cause_text=text):
            # A call that was never answered gets its verdict from the OriginateResult.
            return CallUpdate(
                status=CallStatus.COMPLETED,
                only_if_answered=True,
                hangup_cause=cause,
                hangup_cause_text=text,
            )
    return None


class CallJournal:
    """One call's pending writes and the task that applies them in order."""

    def __init__(
        self,
        db: Database,
        call_id: uuid.UUID,
        client_id: uuid.UUID | None,
        *,
        clock: Callable[[], dt.datetime],
        on_done: Callable[[CallJournal], None],
        retry_delays: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.db = db
        self._retry_delays = tuple(retry_delays)
        self.call_id = call_id
        self.client_id = client_id
        self._clock = clock
        self._on_done = on_done
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._holders = 0
        self._owner_checked = client_id is not None
        self.applied = 0
        self.failed = 0
        self.dropped = 0
        self.task = asyncio.create_task(self._run(), name=f"call-journal-{call_id}")

    # --- what callers queue (never blocks, never raises) ---------------------------------------

    def update(self, update: CallUpdate) -> None:
        """Queue a change of the call session."""
        self._put(update)

    def turns(self, turns: list[TranscriptTurn], latency: dict[str, Any] | None = None) -> None:
        """Queue utterances for the transcript (and the latency figures so far)."""
        self._put(_Turns(turns, latency))

    def action(self, action: CallAction) -> None:
        """Queue an in-call action: recorded on the call and applied (a do-not-call at once,
        ahead of nothing but the writes queued before it)."""
        self._put(action)

    def _put(self, write: _Write) -> None:
        if self.task.done():
            if not isinstance(write, _Wake):
                self.dropped += 1
                log.error("call %s: journal closed; a write was lost", self.call_id)
            return
        # An action is never dropped (a do-not-call must be kept); a caller turn makes one at
        # most, so they cannot grow the queue without bound.
        if self._queue.qsize() >= MAX_PENDING and not isinstance(write, _Wake | CallAction):
            self.dropped += 1
            log.error("call %s: %d writes pending; one was dropped", self.call_id, MAX_PENDING)
            return
        self._queue.put_nowait(write)

    # --- lifetime -------------------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether a call handler holds the journal: the call runs on this node."""
        return self._holders > 0

    def hold(self) -> None:
        """Keep the writer alive while a call handler may still queue writes."""
        self._holders += 1

    def release(self) -> None:
        """Undo one :meth:`hold`; the writer ends once the queue is empty and nobody holds it."""
        self._holders -= 1
        self._put(_Wake())

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every write queued so far is applied (or failed); False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def cancel(self) -> None:
        """Stop the writer now; what is still queued is lost (and logged)."""
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        try:
            while True:
                if self._queue.empty() and self._holders <= 0:
                    return
                write = await self._queue.get()
                try:
                    await self._apply_with_retries(write)
                finally:
                    self._queue.task_done()
        finally:
            lost = self._queue.qsize()
            if lost:
                log.error("call %s: %d writes were not stored", self.call_id, lost)
            self._on_done(self)

    async def _apply_with_retries(self, write: _Write) -> None:
        """Apply one write; a database error is retried after each of ``retry_delays`` (a
        locked SQLite file, a PostgreSQL failover), then logged and given up: it costs this
        write, never the call (docs/telephony.md, "Failures"). A refusal by the store's rules
        (an illegal transition, an unknown call) is final at once."""
        for delay in (*self._retry_delays, None):
            try:
                await self._apply(write)
                return
            except DomainError as error:
                self.failed += 1
                log.warning("call %s: %s not stored: %s", self.call_id, _name(write), error)
                return
            except Exception:
                if delay is None:
                    self.failed += 1
                    log.exception("call %s: could not store %s", self.call_id, _name(write))
                    return
                log.warning("call %s: storing %s failed; retrying", self.call_id, _name(write))
                await asyncio.sleep(delay)

    async def _apply(self, write: _Write) -> None:
        if isinstance(write, _Wake):
            return
        if not self._owner_checked:
            # Call events carry the call id only; the session knows its client (looked up once).
            self.client_id = await store.call_owner(self.db, self.call_id)
            self._owner_checked = True
            if self.client_id is None:
                log.info("call %s is not a stored call; its events are not kept", self.call_id)
        if self.client_id is None:
            return
        if isinstance(write, CallAction):
            entry = await apply_call_action(
                self.db, self.client_id, self.call_id, write, self._clock()
            )
            if entry["result"] != "done":
                log.warning("call %s: %s %s", self.call_id, _name(write), entry["result"])
        elif isinstance(write, _Turns):
            await append_turns(
                self.db,
                self.client_id,
                self.call_id,
                write.turns,
                write.latency,
                now=self._clock(),
            )
        else:
            await apply_call_update(self.db, self.client_id, self.call_id, write, self._clock())
        self.applied += 1


class CallJournals:
    """Every live call's journal, by call id."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        retry_delays: Sequence[float] = RETRY_DELAYS_S,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self._db = db
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        self._drain_timeout_s = drain_timeout_s
        self._journals: dict[uuid.UUID, CallJournal] = {}
        self._early: OrderedDict[uuid.UUID, tuple[dt.datetime, list[CallUpdate]]] = OrderedDict()
        """Announced inbound calls not yet routed: when announced, and what AMI reported."""
        self._closing = False

    def __len__(self) -> int:
        return len(self._journals)

    def journal(self, call_id: uuid.UUID, client_id: uuid.UUID | None = None) -> CallJournal:
        """The call's journal, started if needed."""
        journal = self._journals.get(call_id)
        if journal is None or journal.task.done():
            journal = CallJournal(
                self._db,
                call_id,
                client_id,
                clock=self._clock,
                on_done=self._forget,
                retry_delays=self._retry_delays,
            )
            self._journals[call_id] = journal
        elif client_id is not None and journal.client_id is None:
            journal.client_id = client_id
        return journal

    def held_calls(self) -> list[uuid.UUID]:
        """The calls this node runs now (a call handler holds their journals)."""
        return [call_id for call_id, journal in self._journals.items() if journal.held]

    async def heartbeat(self, also: Iterable[uuid.UUID] = ()) -> int:
        """A sign of life, in one short write per few hundred calls, for every call this node
        runs and for ``also`` (calls the phone system reports live, e.g. still ringing).
        Returns how many live calls it touched."""
        calls = {*self.held_calls(), *also}
        if not calls:
            return 0
        return await touch_calls(self._db, calls, self._clock())

    def _forget(self, journal: CallJournal) -> None:
        if self._journals.get(journal.call_id) is journal:
            del self._journals[journal.call_id]

    @contextlib.asynccontextmanager
    async def hold(self, call_id: uuid.UUID, client_id: uuid.UUID) -> AsyncIterator[CallJournal]:
        """The call's journal for the length of a call; on the way out its writes are drained
        (at most ``drain_timeout_s``, then the rest is dropped and logged)."""
        journal = self.journal(call_id, client_id)
        journal.hold()
        _, early = self._early.pop(call_id, (None, []))
        for update in early:  # what AMI reported before the call was routed, in order
            journal.update(update)
        try:
            yield journal
        finally:
            journal.release()
            try:
                drained = await journal.drain(self._drain_timeout_s)
            except asyncio.CancelledError:
                await journal.cancel()
                raise
            if not drained:
                log.error("call %s: the database did not keep up; dropping writes", call_id)
                await journal.cancel()

    def not_stored(self, call_id: uuid.UUID) -> None:
        """The call was routed to nothing stored (a number no client owns, refused): what AMI
        reported about it before is dropped."""
        self._early.pop(call_id, None)

    def on_call_event(self, event: CallEvent) -> None:
        """``AmiClient.subscribe`` listener: queue what the event changes (never blocks)."""
        if self._closing:
            return
        if isinstance(event, InboundCallStarted):
            self._expect(event.call_id)
            return
        update = update_for(event)
        if update is None:
            return
        early = self._early.get(event.call_id)
        if early is not None:
            # Announced, not routed yet: its session may not exist yet (see the module docs).
            if len(early[1]) < MAX_EARLY_UPDATES:
                early[1].append(update)
            else:
                log.warning("call %s: too many reports before routing; one dropped", event.call_id)
            return
        self.journal(event.call_id).update(update)

    def _expect(self, call_id: uuid.UUID) -> None:
        """An inbound call was announced: keep its reports until it is routed."""
        now = self._clock()
        while self._early:
            oldest, (announced, _) = next(iter(self._early.items()))
            expired = (now - announced).total_seconds() > EARLY_KEEP_S
            if not expired and len(self._early) < MAX_EARLY_CALLS:
                break
            del self._early[oldest]
        if call_id not in self._journals or not self._journals[call_id].held:
            self._early.setdefault(call_id, (now, []))

    async def close(self) -> None:
        """Drain every journal (bounded), then stop what is left."""
        self._closing = True
        journals = list(self._journals.values())
        if journals:
            await asyncio.gather(*(j.drain(self._drain_timeout_s) for j in journals))
        for journal in journals:
            await journal.cancel()


@dataclass
class JournalObserver:
    """The voice pipeline's ``PipelineObserver`` that writes each turn to the call's journal
    as it finishes: a crash mid-call loses nothing already said (docs/telephony.md)."""

    journal: CallJournal
    clock: Clock
    """The pipeline's clock: turn timestamps are on it."""
    wall_clock: Callable[[], dt.datetime] = utcnow
    latency: dict[str, Any] = field(default_factory=lambda: {"turns": [], "barge_in_stop_ms": []})

    def _wall(self, at: float | None) -> dt.datetime:
        now = self.wall_clock()
        if at is None:
            return now
        return now - dt.timedelta(seconds=max(0.0, self.clock.now() - at))

    def turn_finished(self, record: TurnRecord) -> None:
        turns = []
        if record.caller_text:
            turns.append(
                TranscriptTurn(
                    speaker="caller", text=record.caller_text, at=self._wall(record.turn_end)
                )
            )
        if record.agent_text:
            turns.append(
                TranscriptTurn(
                    speaker="agent",
                    text=record.agent_text,
                    at=self._wall(record.first_frame_at),
                    interrupted=record.interrupted,
                )
            )
        if not record.hung_up:  # last words were never answered: no latency to report
            measured = self.latency["turns"]
            measured.append(record.latency_ms())
            del measured[:-MAX_LATENCY_TURNS]
        if turns:
            self.journal.turns(turns, self.snapshot())

    def barge_in(self, event: BargeIn) -> None:
        stops = self.latency["barge_in_stop_ms"]
        stops.append(event.stop_ms)
        del stops[:-MAX_LATENCY_TURNS]

    def agent_spoke(self, text: str) -> None:
        self.journal.turns([TranscriptTurn(speaker="agent", text=text, at=self.wall_clock())])

    def snapshot(self) -> dict[str, Any]:
        """A copy of the latency figures (the queued write must not change under it)."""
        return {key: list(values) for key, values in self.latency.items()}
