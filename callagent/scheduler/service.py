"""The scheduler: due rows → dial-time rules → the call placer (docs/scheduler.md).

One :class:`Scheduler` runs per node (``callagent serve``). Each pass it

1. turns outgoing calls that reached nobody into retry rows (``dial_queue.create_retries``);
2. leases the due rows it has room for - as many as the node's admission control has free
   slots (``routing.max_active_calls``, shared with inbound calls, browser calls and start-call;
   docs/telephony.md "Capacity") - (``dial_queue.claim_due``: ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so several nodes share the work and never take one row twice);
3. for each, takes a slot (``CallAdmission.try_reserve``; a node that filled up meanwhile
   gives the row back untouched with ``dial_queue.give_back``, so it waits for a later pass
   or another node), checks the dial-time rules under the row lock (``dial_queue.take`` with
   :func:`callagent.scheduler.rules.check`) and either places the call it wrote - through the
   same ``CallPlacer`` start-call uses, presenting the agent's own number - or leaves the row
   moved, closed or waiting, with the reason;
4. records the placement (``calls.record_placement``) and drops the lease.

Nothing is kept in memory between passes (the node's call count is the admission's, which the
call runner keeps): a restart loses nothing, and a row leased by a node that died is taken again
when its lease runs out. Calls and callbacks a crash left ``dialing`` / ``in_progress`` are
settled by crash recovery (``telephony/recovery.py``), which ``serve`` runs beside this.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from callagent.background import BackgroundLoop
from callagent.scheduler.rules import DialPolicy, check
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import calls, dial_queue
from callagent.store.services.dial_queue import Claimed, DialFacts, RetryPolicy, Verdict
from callagent.telephony.admission import CallAdmission
from callagent.telephony.outbound import (
    CallPlacer,
    OutboundCallRequest,
    PlacementResult,
    place_call_safely,
)

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
"""How long :meth:`Scheduler.close` lets a pass in progress finish before cancelling it."""
DIALS_AT_ONCE = 4
"""Rows of one pass dialled concurrently."""
RETRY_SCAN_INTERVAL_S = 10.0
"""Unreached calls are turned into retry rows at most this often."""
RETRY_LOOKBACK = dt.timedelta(days=2)
"""Calls that ended longer ago than this are not retried any more (a node down that long)."""


def default_node_name() -> str:
    """``host:pid``: unique among the nodes of one database."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}"


@dataclass(frozen=True)
class SchedulerParams:
    """The scheduler's parameter object (from the ``scheduler`` settings)."""

    node: str
    poll_interval_s: float = 0.25
    lease_s: float = 30.0
    batch: int = 20
    wait_s: float = 60.0
    policy: DialPolicy = field(default_factory=DialPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    live_grace_s: float = 90.0
    """A live call silent for longer counts as lost (``recovery.stale_after_s``)."""


@dataclass
class PassReport:
    """What one pass did."""

    claimed: int = 0
    dialled: list[uuid.UUID] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    full: bool = False
    """The node had no free slot: nothing was leased."""


class Scheduler:
    """Dials due rows (see the module docstring). Without ``admission`` (a node that counts no
    calls, as in tests of the queue alone) a pass dials up to ``params.batch`` rows."""

    def __init__(
        self,
        db: Database,
        placer: CallPlacer,
        params: SchedulerParams,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        admission: CallAdmission | None = None,
    ) -> None:
        self._db = db
        self._placer = placer
        self._params = params
        self._clock = clock
        self._admission = admission
        self._loop = BackgroundLoop(
            "scheduler",
            self._pass,
            interval_s=params.poll_interval_s,
            stop_timeout_s=STOP_TIMEOUT_S,
        )
        self._last_retry_scan: dt.datetime | None = None
        self.passes = 0
        """Passes finished so far."""

    @property
    def node(self) -> str:
        """This node's name in leases."""
        return self._params.node

    def start(self) -> None:
        """Run :meth:`run` in the background until :meth:`close`."""
        self._loop.start()

    async def close(self) -> None:
        """Stop after the pass in progress (a dial cut off between its writes would wait for
        its lease to run out)."""
        await self._loop.close()

    async def run(self) -> None:
        """Pass, then wait ``poll_interval_s``, until :meth:`close`. A pass that fails (the
        database is down) is logged and the next one tries again."""
        await self._loop.run()

    async def _pass(self) -> None:
        await self.run_pass()

    async def run_pass(self) -> PassReport:
        """One pass (see the module docstring)."""
        report = PassReport()
        params = self._params
        now = self._clock()
        if self._last_retry_scan is None or (now - self._last_retry_scan).total_seconds() >= (
            RETRY_SCAN_INTERVAL_S
        ):
            made = await dial_queue.create_retries(
                self._db, now, now - RETRY_LOOKBACK, params.retry
            )
            report.retries = len(made)
            self._last_retry_scan = now
        room = params.batch
        if self._admission is not None:
            room = self._admission.free
            if room <= 0:
                # Leave the due rows unleased: another node with room takes them, or this
                # one at a later pass once a call ended.
                report.full = True
                return report
        claimed = await dial_queue.claim_due(
            self._db,
            params.node,
            now,
            lease=dt.timedelta(seconds=params.lease_s),
            limit=min(params.batch, room),
        )
        report.claimed = len(claimed)
        # A few rows at once: each waits on the database and the placer, not on the CPU.
        gate = asyncio.Semaphore(DIALS_AT_ONCE)

        async def one(row: Claimed) -> None:
            async with gate:
                if self._loop.stopping:
                    return  # keeps its lease until it runs out; then any node takes it
                verdict, call_id = await self.dial(row)
            report.verdicts[verdict] = report.verdicts.get(verdict, 0) + 1
            if call_id is not None:
                report.dialled.append(call_id)

        await asyncio.gather(*(one(row) for row in claimed))
        self.passes += 1
        return report

    async def dial(self, row: Claimed) -> tuple[str, uuid.UUID | None]:
        """Decide and, if the rules allow, place the call of one leased row; what happened
        (the verdict's code, ``dial``, ``redial`` or ``released``) and the call's id."""
        params = self._params
        # The slot comes first: a row that finds the node full is left as it was (no attempt
        # counted, not failed) and its lease given back.
        slot = None
        if self._admission is not None:
            slot = self._admission.try_reserve()
            if slot is None:
                await dial_queue.give_back(self._db, row, params.node)
                return "at_capacity", None

        def rule(facts: DialFacts) -> Verdict:
            return check(facts, params.policy)

        try:
            taken = await dial_queue.take(
                self._db,
                row,
                params.node,
                rule,
                self._clock(),
                live_grace=dt.timedelta(seconds=params.live_grace_s),
                wait=dt.timedelta(seconds=params.wait_s),
            )
        except BaseException:
            if slot is not None:
                slot.cancel()
            raise
        order = taken.order
        if order is None:
            if slot is not None:
                slot.cancel()
            if taken.verdict is not None and taken.verdict.action != "dial":
                log.info(
                    "scheduler: row %s %s: %s",
                    row.callback_id,
                    taken.verdict.action,
                    taken.verdict.reason or taken.verdict.code,
                )
                return taken.verdict.code, None
            return "released" if taken.released else "skipped", None
        if slot is not None:
            # Bound before the Originate, as start-call does: the connection Asterisk opens
            # when the callee answers must find its slot, whenever place_call returns.
            slot.bind(order.call_id)
        result = await _place(self._placer, order)
        if slot is not None and not result.placed:
            slot.cancel()
        if order.redial and not result.placed:
            # Taken over from a node that died after writing the call: Asterisk refusing it
            # (its channel id in use) may mean the first Originate went out after all. The
            # call is left as it is: its events move it on, or crash recovery settles it as
            # interrupted once it stays silent (and the row is retried then).
            log.warning(
                "scheduler: call %s of row %s not placed again: %s",
                order.call_id,
                row.callback_id,
                result.reason,
            )
            await dial_queue.release(self._db, row, params.node)
            return "redial_refused", order.call_id
        await calls.record_placement(
            self._db,
            order.client_id,
            order.call_id,
            placed=result.placed,
            reason=result.reason,
            telephony_call_id=result.telephony_call_id,
            now=self._clock(),
        )
        await dial_queue.release(self._db, row, params.node)
        return ("redial" if order.redial else "dial"), order.call_id


async def _place(placer: CallPlacer, order: dial_queue.DialOrder) -> PlacementResult:
    request = OutboundCallRequest(
        call_session_id=order.call_id,
        client_id=order.client_id,
        agent_id=order.agent_id,
        customer_id=order.customer_id,
        phone_number=order.phone_number,
        call_type=order.call_type.value,
        purpose=order.purpose,
        scheduled_callback_id=order.callback_id,
        caller_id=order.caller_id,
    )
    return await place_call_safely(placer, request)
