"""Carrying out what the agent decides during a call (docs/dialog.md "In-call actions").

:class:`CallActions` is the dialog's ``ActionSink`` for one call. The dialog calls
:meth:`CallActions.take` the moment it decides; nothing here blocks the audio:

* every action is recorded in the call's ``actions_taken`` through the call's journal - the one
  writer of the call's state - which also applies it at once: do-not-call on the customer (and
  their callbacks cancelled), a callback or appointment with its resolved time, interest;
* a hand-over is carried out when the call ends, after the agent said it would put the caller
  through: over AMI to an allow-listed target (``asterisk.transfer_targets``, the first is the
  default; ``Redirect`` moves the caller's channel, docs/telephony.md), and the line is closed
  once Asterisk has taken the caller away. Without AMI (the embedded mode, ``callagent call
  --simulate``) it is recorded as done and the call ends;
* ``end_call`` is recorded; the pipeline hangs up once the goodbye was played.

Times the customer says are read in the customer's zone (their record's, else their number's,
else the agent's) and inside the legal calling window and the agent's working hours
(``dialog/when.py``); those facts are read from the store in the background when the call
starts, so the greeting never waits for them.

A call nothing is stored for (no journal) keeps its actions in :attr:`CallActions.taken` only,
which the call's report shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from callagent.dialog.actions import Action, ActionKind, ResolvedTime, resolve_spoken
from callagent.dialog.when import CallingWindow, customer_time_zone
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import telephony as store
from callagent.store.services.call_state import CallAction
from callagent.store.states import InterestLevel
from callagent.telephony.call_journal import CallJournal

log = logging.getLogger(__name__)

TransferFunction = Callable[[uuid.UUID, str], Awaitable[None]]
"""``AmiDialer.transfer``: hand call ``call_id`` to the allow-listed target name."""

TRANSFER_WAIT_S: Final = 3.0
"""How long the line stays open after Asterisk accepted a hand-over, for it to take the caller
away (the AudioSocket leg then ends from its side)."""


@dataclass(frozen=True)
class ActionParams:
    """How a node carries out in-call actions (the composition root fills it in)."""

    transfer: TransferFunction | None = None
    """None: no AMI, a hand-over is only recorded (embedded mode, simulated calls)."""
    transfer_targets: tuple[str, ...] = ()
    """Allow-listed target names; the first is where "a person" goes."""
    fallback_zone: str = "UTC"
    """The zone a time is read in when the call's customer and agent are unknown."""
    transfer_wait_s: float = TRANSFER_WAIT_S


class CallActions:
    """One call's actions: the dialog's ``ActionSink`` (see the module docstring)."""

    def __init__(
        self,
        call_id: uuid.UUID,
        params: ActionParams | None = None,
        *,
        journal: CallJournal | None = None,
        client_id: uuid.UUID | None = None,
        via_ami: bool = False,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.call_id = call_id
        self._params = params or ActionParams()
        self._journal = journal
        self._client_id = client_id
        self._via_ami = via_ami
        self._now = now
        self._zone = _zone(self._params.fallback_zone)
        self._window = CallingWindow()
        self._clock_task: asyncio.Task[None] | None = None
        self._transfer_to: str | None = None
        self.taken: list[dict[str, Any]] = []
        """Every action taken on the call, as recorded (the call's report shows them)."""

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the call's clock facts from the store in the background (a stored call)."""
        if self._journal is not None and self._client_id is not None:
            self._clock_task = asyncio.create_task(
                self._load_clock(self._journal.db, self._client_id), name="call-clock"
            )

    async def close(self) -> None:
        """Stop the background read (DESIGN.md practice 4: no helper outlives its call)."""
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task

    async def _load_clock(self, db: Database, client_id: uuid.UUID) -> None:
        try:
            clock = await store.call_clock(db, client_id, self.call_id)
        except Exception:
            log.warning("could not read the call's time zone; times are read in %s", self._zone)
            return
        if clock is None:
            return
        agent_zone = _zone(clock.agent_timezone, self._zone)
        self._zone = customer_time_zone(clock.phone_number, clock.customer_timezone, agent_zone.key)
        start, end = clock.working_hours
        if start != end:
            self._window = CallingWindow(agent_hours=(start, end), agent_zone=agent_zone)

    # --- the dialog's ActionSink ----------------------------------------------------------------

    @property
    def can_transfer(self) -> bool:
        """A person can take the call: AMI and an allow-listed target for a call Asterisk
        carries, or - without AMI - always (the hand-over is only recorded)."""
        if self._params.transfer is None:
            return True
        return self._via_ami and bool(self._params.transfer_targets)

    def resolve_time(self, said: str) -> ResolvedTime | None:
        return resolve_spoken(said, now=self._now(), tz=self._zone, window=self._window)

    def take(self, action: Action) -> None:
        record = action.to_record()
        if self._already_taken(record):
            # The scheduling rule and the model may both decide the same callback or
            # appointment (docs/dialog.md "The scheduling pass"): one row, not two.
            log.info("%s at the same time already taken on this call", action.kind.value)
            return
        change = CallAction(record=record)
        if action.skipped:
            # Not carried out (the call's purpose does not allow it, dialog/purposes.py): only
            # recorded, with why (the store writes it as the entry's "skipped: …" result).
            if self._journal is None:
                record["result"] = f"skipped: {record.pop('skipped')}"
        elif action.kind is ActionKind.SET_DO_NOT_CALL:
            change = CallAction(record=record, do_not_call=True)
        elif action.kind in (ActionKind.SCHEDULE_CALLBACK, ActionKind.BOOK_APPOINTMENT):
            change = self._timed(action, record)
        elif action.kind is ActionKind.SET_INTEREST and action.get("level"):
            change = CallAction(record=record, interest=InterestLevel(action.get("level")))
        elif action.kind is ActionKind.TRANSFER:
            change = self._transfer(action, record)
        self.taken.append(record)
        if self._journal is not None:
            self._journal.action(change)

    def _already_taken(self, record: dict[str, Any]) -> bool:
        """Whether a callback or appointment for the same time (and of the same kind) was
        already carried out on this call."""
        if record.get("skipped") or "at" not in record:
            return False
        same = ("type", "at", "kind")
        return any(
            not taken.get("skipped") and all(taken.get(k) == record.get(k) for k in same)
            for taken in self.taken
        )

    def _timed(self, action: Action, record: dict[str, Any]) -> CallAction:
        said = action.get("when")
        if action.kind is ActionKind.BOOK_APPOINTMENT:
            kind = action.get("kind") or "appointment"
            reason = f"{kind} booked on the call" + (f": {said}" if said else "")
            return CallAction(
                record=record,
                callback_at=action.at,
                callback_reason=reason,
                expected_outcome=kind,
            )
        reason = "asked on the call" + (f": {said}" if said else "")
        if action.get("reason"):
            reason += f" ({action.get('reason')})"
        return CallAction(record=record, callback_at=action.at, callback_reason=reason)

    def _transfer(self, action: Action, record: dict[str, Any]) -> CallAction:
        targets = self._params.transfer_targets
        wanted = action.get("target")
        # Only a name on the allow-list, exactly (telephony/asterisk/transfer.py); "a person",
        # "your manager" and the like go to the first one.
        target = wanted if wanted in targets else (targets[0] if targets else "")
        record["target"] = target
        self._transfer_to = target
        if self._params.transfer is None:
            record["simulated"] = True  # no AMI: nothing to hand over to, the call ends
            return CallAction(record=record, transferred_to=target or "simulated")
        return CallAction(record=record)  # AMI reports the hand-over once Asterisk made it

    # --- the end of the call --------------------------------------------------------------------

    async def end_call(
        self, hang_up: Callable[[], Awaitable[None]], closed: Callable[[], bool]
    ) -> None:
        """The pipeline ends the call (its goodbye or confirmation was played): hand the caller
        over if that was decided, then close the line."""
        transfer, target = self._params.transfer, self._transfer_to
        try:
            if transfer is not None and target:
                try:
                    await transfer(self.call_id, target)
                except Exception as error:
                    # The caller was told they would be put through; nothing can be done on
                    # this line now but to end it (the action's record says what happened).
                    log.error("hand-over to %s failed: %s", target, error)
                    self._journal_note(f"transfer to {target} failed: {type(error).__name__}")
                else:
                    log.info("handed over to %s", target)
                    await self._wait_closed(closed)
        finally:
            await hang_up()

    async def _wait_closed(self, closed: Callable[[], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + self._params.transfer_wait_s
        # A connection offers no event for its end (telephony/connection.py): poll it.
        while not closed() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def _journal_note(self, result: str) -> None:
        record = {"type": "transfer", "source": "executor", "result_detail": result}
        self.taken.append(record)
        if self._journal is not None:
            self._journal.action(CallAction(record=record))


def _zone(name: str, fallback: zoneinfo.ZoneInfo | None = None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return fallback or zoneinfo.ZoneInfo("UTC")
