"""Which agent answers a call, who is calling, and which call session it is.

docs/telephony.md "Routing" has the whole table.

For each call the :class:`CallRouter` decides, from what the call itself or AMI says:

* **inbound** (AMI's ``CallagentInbound`` event, or a direct-SIP call's To / From): the dialled
  number (DID) → the client that owns it (``phone_numbers``, unique across the installation) →
  that client's agent; the caller id → that client's customer, created if new; a call session
  ``in_progress`` whose id is the call id (the AudioSocket UUID);
* **outbound** (AMI tracked an Originate with this id, or a call session has it): the call
  session that ``start-call`` created - its id *is* the AudioSocket UUID (``AmiCallPlacer``);
* **announced in-process** (:meth:`CallRouter.announce`: ``callagent call --simulate --client``
  without AMI): routed like an inbound call from what the announcement says - the same DID and
  caller id the dialplan's ``CallagentInbound`` event carries;
* **no routing information** (the embedded mode: AudioSocket without AMI, ``callagent call
  --simulate``): the configured file agent answers and nothing is stored.

A number no client owns (or a call whose routing fails) is handled as ``routing.unknown_number``
says: ``file_agent`` (default) - the file agent answers and nothing is stored, which keeps a
single-business install that never created a client working; or ``message`` - the caller hears
``routing.unknown_number_message`` and the call ends, the right choice for a multi-tenant
install. Either way no client's agent ever answers another client's number.

The dialog profile of a stored agent is built by :func:`~callagent.dialog.profile_builder.
build_agent_profile` and cached per agent (:class:`ProfileCache`): a call costs one small query
to see whether the agent or its training changed, not a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.customer_context import Direction, customer_context
from callagent.dialog.profile_builder import build_agent_profile
from callagent.dialog.prompt import build_system_prompt
from callagent.dialog.purposes import CallPurpose, parse_purpose
from callagent.store.db import Database
from callagent.store.errors import DomainError, ValidationFailed
from callagent.store.models import utcnow
from callagent.store.phone import normalize_phone
from callagent.store.schemas import CustomerView
from callagent.store.services import customers as customer_service
from callagent.store.services import telephony as store
from callagent.store.states import CallStatus
from callagent.telephony.asterisk.ami import AmiClient
from callagent.telephony.asterisk.call_tracker import (
    AmdResult,
    AmdStatus,
    AmiCallDirection,
    CallEvent,
)
from callagent.telephony.connection import AddressedCall, CallConnection, ClientTestCall

log = logging.getLogger(__name__)

UnknownNumberPolicy = Literal["file_agent", "message"]
AcceptPolicy = Literal["announced", "any"]
RouteKind = Literal["agent", "file_agent", "message", "refused"]

_OVER = frozenset({CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELLED})


@dataclass(frozen=True)
class Route:
    """How one call is answered, and where (if anywhere) it is stored."""

    kind: RouteKind
    reason: str
    profile: AgentProfile | None = None
    context: str | None = None
    message: str = ""
    client_id: uuid.UUID | None = None
    call_id: uuid.UUID | None = None
    """The call session to persist into; None: nothing is stored."""
    direction: Direction = "inbound"
    via_ami: bool = False
    """AMI reports this call's events (AMD, DTMF, hang-up); else the line itself does."""
    greeting: str | None = None
    """The agent's first words, when not the profile's greeting (a call the agent placed)."""
    purpose: CallPurpose | None = None
    """What a placed call is for (``dialog/purposes.py``: its objective and allowed actions);
    None: the agent's general job."""
    machine: MachinePolicy | None = None
    """What the agent does when AMD says MACHINE (a stored agent's placed call); None: it talks
    as to anyone."""


@dataclass(frozen=True)
class MachinePolicy:
    """An agent's ``dial_policy.on_machine`` for one call (docs/telephony.md "When a machine
    answers"): hang up at once (``message`` None), or speak ``message`` once and hang up."""

    message: str | None = None


MACHINE_MESSAGE: Final = (
    "Hello, this is {name}, an AI assistant from {company}, calling {for_customer}. Sorry we "
    "missed you; we will try again later. Goodbye."
)
"""The message left on a machine when the agent's ``machine_message`` is empty: who called,
from where, and that they will call again."""


def machine_policy(
    dial_policy: dict[str, Any], profile: AgentProfile, customer: str
) -> MachinePolicy:
    """The agent's choice (``ai_agents.dial_policy``: ``on_machine``, ``machine_message``) for a
    call to ``customer`` (a name, or ``""``), with the message filled in."""
    if dial_policy.get("on_machine") != "leave_message":
        return MachinePolicy()  # "hang_up", the default
    name = " ".join(customer.split())[:60]
    template = str(dial_policy.get("machine_message") or "").strip()
    text = ""
    if template:
        try:
            text = template.format(name=profile.name, company=profile.company, customer=name)
        except (KeyError, IndexError, ValueError):
            # The API refuses other placeholders (store/services/agents.py); a row written
            # before that check gets the default message rather than a failed call.
            log.warning("the agent's machine_message does not fill in; using the default")
    if not text:
        text = MACHINE_MESSAGE.format(
            name=profile.name,
            company=profile.company,
            for_customer=f"for {name}" if name else "you",
        )
    # A message that does not say the caller is an AI gets the disclosure (docs/dialog.md).
    return MachinePolicy(message=profile.with_notices(" ".join(text.split())))


def e164(number: str) -> str | None:
    """A number as Asterisk or a SIP header gives it (``+4930…``, ``004930…``, ``4930…``) in
    E.164, or None. National numbers without a country code are ambiguous: None."""
    text = number.strip()
    if not text:
        return None
    if text[0].isdigit() and not text.startswith("00"):
        text = "+" + text
    try:
        return normalize_phone(text)
    except ValidationFailed:
        return None


class ProfileCache:
    """Dialog profiles of stored agents, rebuilt only when the agent or its training changed.

    ``warm`` (the LLM's ``warm_up``) runs in the background for each newly built profile's
    system prompt, so the first caller turn finds it in the model's prefix cache; the greeting
    is fixed text and plays meanwhile.
    """

    def __init__(
        self, db: Database, *, warm: Callable[[str], Awaitable[None]] | None = None
    ) -> None:
        self._db = db
        self._warm = warm
        self._profiles: dict[uuid.UUID, tuple[tuple[Any, ...], AgentProfile]] = {}
        self._dial_policies: dict[uuid.UUID, dict[str, Any]] = {}
        self._warming: set[asyncio.Task[None]] = set()
        self.builds = 0

    async def get(self, client_id: uuid.UUID, agent_id: uuid.UUID) -> AgentProfile | None:
        """The agent's profile, or None when there is no such agent of that client."""
        fingerprint = await store.agent_fingerprint(self._db, agent_id)
        if fingerprint is None:
            return None
        cached = self._profiles.get(agent_id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        material = await store.agent_material(self._db, client_id, agent_id)
        if material is None:
            return None
        profile = build_agent_profile(material.agent, material.trainings, material.client_name)
        self._profiles[agent_id] = (fingerprint, profile)
        self._dial_policies[agent_id] = dict(material.agent.dial_policy or {})
        self.builds += 1
        if self._warm is not None:
            task = asyncio.create_task(self._warm_up(build_system_prompt(profile)))
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)
        return profile

    def dial_policy(self, agent_id: uuid.UUID) -> dict[str, Any]:
        """The agent's ``dial_policy`` as of its cached profile (a PATCH changes the agent's
        fingerprint, so :meth:`get` refreshes both)."""
        return self._dial_policies.get(agent_id, {})

    async def _warm_up(self, prompt: str) -> None:
        assert self._warm is not None
        try:
            await self._warm(prompt)
        except Exception:
            log.warning("warming the LLM for a new agent profile failed", exc_info=True)

    async def close(self) -> None:
        """Stop background warm-ups."""
        for task in list(self._warming):
            task.cancel()
        for task in list(self._warming):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class CallRouter:
    """Routes each call (see the module docstring); never raises."""

    def __init__(
        self,
        db: Database,
        profiles: ProfileCache,
        *,
        fallback: AgentProfile,
        unknown_number: UnknownNumberPolicy = "file_agent",
        unknown_message: str = "Sorry, this number is not in service. Goodbye.",
        ami: AmiClient | None = None,
        ami_wait_s: float = 2.0,
        accept: AcceptPolicy = "announced",
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._db = db
        self._accept = accept
        self._profiles = profiles
        self._fallback = fallback
        self._unknown_number = unknown_number
        self._unknown_message = unknown_message
        self._ami = ami
        self._ami_wait_s = ami_wait_s
        self._clock = clock
        self._announced: dict[uuid.UUID, tuple[str, str]] = {}

    def announce(self, call_id: uuid.UUID, did: str, caller: str) -> None:
        """Expect inbound call ``call_id`` to ``did`` from ``caller``: what the dialplan's
        ``CallagentInbound`` event tells AMI, for a node without AMI (a simulated call,
        ``callagent call --simulate --client``). The call is routed by it once, when it
        connects; with AMI, announce through AMI instead (the call is then AMI's to report)."""
        self._announced[call_id] = (did, caller)

    async def route(self, connection: CallConnection) -> Route:
        """How ``connection`` is answered. A routing failure (the database is down) is
        logged and handled like an unknown number: the call is still answered."""
        try:
            route = await self._route(connection)
        except Exception:
            log.exception("routing failed")
            route = self._unknown("routing failed")
        # Routing runs inside the call runner's call_context: the log lines carry the call's id.
        if route.kind == "refused":
            log.warning("refused from %s: %s", connection.remote, route.reason)
            return route
        log.info(
            "answered as %s (%s)%s",
            route.kind,
            route.reason,
            f", stored as call {route.call_id}" if route.call_id else ", not stored",
        )
        return route

    async def _route(self, connection: CallConnection) -> Route:
        call_id = connection.call_id
        if isinstance(connection, ClientTestCall):  # the dashboard's browser phone
            return await self._test(call_id, connection.client_id)
        if isinstance(connection, AddressedCall):  # direct SIP: the call names both numbers
            return await self._inbound(call_id, connection.dialed, connection.caller, "", False)
        announced = self._announced.pop(call_id, None)
        if announced is not None:
            return await self._inbound(call_id, *announced, "", False)
        if self._ami is None:
            return Route(kind="file_agent", reason="no routing information", profile=self._fallback)
        state = await self._ami.wait_for_call(call_id, timeout_s=self._ami_wait_s)
        strict = self._accept == "announced"
        if strict and state is not None and state.ended is not None:
            return _refused("AMI reported this call's hang-up already")
        if state is not None and state.direction is AmiCallDirection.INBOUND:
            return await self._inbound(call_id, state.number, state.caller, state.channel, True)
        # An Originate of ours (the tracker knows it), or one whose AMI state was lost with a
        # reconnect or restart: the call session with this id says.
        placed = await store.placed_call(self._db, call_id)
        if placed is None:
            if state is not None:
                log.warning("an outbound call with no call session")
                return Route(
                    kind="file_agent",
                    reason="outbound without a call session",
                    profile=self._fallback,
                    direction="outbound",
                    via_ami=True,
                    greeting=self._fallback.outbound_greeting_text(),
                )
            if strict:
                # Only Asterisk may talk to AudioSocket: anyone else who reaches the port knows
                # no call id the dialplan or an Originate of ours announced.
                return _refused("AMI did not announce this call id")
            return self._unknown("AMI did not announce this call")
        if strict and state is None and placed.status in _OVER:
            return _refused(f"its call session is {placed.status.value}")
        return await self._outbound(placed)

    async def _inbound(
        self, call_id: uuid.UUID, did: str, caller: str, channel: str, via_ami: bool
    ) -> Route:
        number = e164(did)
        if number is None:
            return self._unknown(f"dialled number {did!r} is not a phone number", via_ami)
        routed = await store.open_inbound_call(
            self._db,
            call_id=call_id,
            did=number,
            caller=e164(caller),
            channel=channel,
            now=self._clock(),
        )
        if routed is None:
            return self._unknown(f"no client answers {number}", via_ami)
        profile = await self._profiles.get(routed.client_id, routed.agent_id)
        if profile is None:
            return self._unknown(f"the agent of {number} is gone", via_ami)
        customer = await self._customer(routed.client_id, routed.customer_id)
        return Route(
            kind="agent",
            reason=f"{number} → client {routed.client_id}"
            + (" (new customer)" if routed.customer_created else ""),
            profile=profile,
            context=customer_context(customer, direction="inbound"),
            client_id=routed.client_id,
            call_id=routed.call_id,
            direction="inbound",
            via_ami=via_ami,
        )

    async def _test(self, call_id: uuid.UUID, client_id: uuid.UUID) -> Route:
        """A browser-phone call: the signed-in person's own agent, stored as type ``test``
        (docs/dashboard.md "Talk to your agent"). The agent hears of no customer: the tester
        is a new caller each time, whatever earlier test calls taught the record."""
        routed = await store.open_test_call(
            self._db, call_id=call_id, client_id=client_id, now=self._clock()
        )
        if routed is None:
            return _refused(f"client {client_id} has no agent")
        profile = await self._profiles.get(routed.client_id, routed.agent_id)
        if profile is None:
            return _refused(f"the agent of client {client_id} is gone")
        return Route(
            kind="agent",
            reason=f"browser test call of client {client_id}",
            profile=profile,
            context=customer_context(None, direction="inbound"),
            client_id=routed.client_id,
            call_id=routed.call_id,
            direction="inbound",
        )

    async def _outbound(self, placed: store.PlacedCall) -> Route:
        profile = await self._profiles.get(placed.client_id, placed.agent_id)
        if profile is None:
            return Route(
                kind="file_agent",
                reason="the call's agent is gone",
                profile=self._fallback,
                direction="outbound",
                greeting=self._fallback.outbound_greeting_text(),
            )
        customer = await self._customer(placed.client_id, placed.customer_id)
        # "follow_up: the quote" → the follow-up purpose, about "the quote"; free text is what
        # the call is about, with the call type's default purpose (docs/dialog.md).
        brief = parse_purpose(placed.purpose, placed.call_type.value)
        return Route(
            kind="agent",
            reason=f"call session of client {placed.client_id}",
            profile=profile,
            context=customer_context(
                customer,
                direction="outbound",
                purpose=brief.about,
                call_context=placed.context,
            ),
            client_id=placed.client_id,
            call_id=placed.call_id,
            direction="outbound",
            via_ami=True,
            greeting=profile.outbound_greeting_text(
                customer.name if customer is not None else "", brief.spoken_reason
            ),
            purpose=brief.purpose,
            machine=machine_policy(
                self._profiles.dial_policy(placed.agent_id),
                profile,
                customer.name if customer is not None else "",
            ),
        )

    def watch_amd(self, call_id: uuid.UUID, on_machine: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_machine`` once AMI reports AMD's MACHINE verdict on a greeting on
        ``call_id`` (not one for silence alone: :func:`_machine`) - at once when it has
        already; returns the function that stops watching. Without AMI nothing is ever
        reported."""
        if self._ami is None:
            return lambda: None

        def listener(event: CallEvent) -> None:
            if event.call_id == call_id and _machine(event):
                on_machine()

        stop = self._ami.subscribe(listener)  # before looking: no verdict slips in between
        state = self._ami.tracker.get(call_id)
        if state is not None and state.amd is not None and _machine(state.amd):
            on_machine()
        return stop

    async def _customer(
        self, client_id: uuid.UUID, customer_id: uuid.UUID | None
    ) -> CustomerView | None:
        if customer_id is None:
            return None
        try:
            return await customer_service.get_customer(self._db, client_id, customer_id)
        except DomainError:
            return None

    def _unknown(self, reason: str, via_ami: bool = False) -> Route:
        if self._unknown_number == "message":
            return Route(kind="message", reason=reason, message=self._unknown_message)
        return Route(kind="file_agent", reason=reason, profile=self._fallback, via_ami=via_ami)


def _machine(event: CallEvent) -> bool:
    """AMD heard a machine's greeting. A MACHINE for silence alone (``INITIALSILENCE-…``, after
    ``initial_silence``: 2 s with ``connect``) is mostly a person waiting for the caller to
    speak first (docs/telephony.md "Outbound calls and AMD"): the agent talks to them."""
    return (
        isinstance(event, AmdResult)
        and event.status is AmdStatus.MACHINE
        and not event.cause.upper().startswith("INITIALSILENCE")
    )


def _refused(reason: str) -> Route:
    """Not a call from Asterisk (``network.audiosocket_accept = announced``): the connection is
    closed without a word, nothing is stored."""
    return Route(kind="refused", reason=reason)


class MessageResponder:
    """A responder that says one message and ends the call (``unknown_number = message``).

    It implements the voice pipeline's ``Responder``: the message is the greeting, whatever
    the caller says gets the same message, and the pipeline hangs up once it has been played.
    """

    def __init__(self, message: str) -> None:
        self._message = message

    def greeting(self) -> str | None:
        return self._message

    async def prepare(self) -> None:
        """No model to warm: the message is fixed."""

    async def reply(self, caller_text: str, *, tentative: bool = False) -> AsyncIterator[str]:
        yield self._message

    def reply_heard(self) -> None:
        """The message decides nothing to carry out."""

    def reply_withdrawn(self) -> None:
        """The message decides nothing to take back."""

    def commit_turn(self, caller_text: str, heard_text: str, interrupted: bool) -> None:
        """Nothing to remember: the call ends after the message."""

    @property
    def end_call_requested(self) -> bool:
        return True

    def dtmf(self, digit: str) -> None:
        """Keys change nothing."""

    def last_words(self, caller_text: str) -> None:
        """Nothing to act on: the message decides nothing."""
