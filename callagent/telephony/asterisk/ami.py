"""The AMI client: outbound calls, hand-over, hang-up and DTMF through Asterisk.

docs/telephony.md describes the actions, the events and the AMI account's rights.

Built on panoramisk (its protocol, ActionID correlation and event dispatch), with the parts that
matter for a phone agent owned here:

* **connection** - :class:`AmiClient` connects, logs in, and reconnects with exponential backoff
  and jitter (:class:`Backoff`) for as long as it runs; a Ping every ``ping_interval_s`` detects a
  dead peer. panoramisk's own reconnect (fixed delay, untracked timers) and its replay of actions
  that were in flight (a replayed Originate would dial the customer twice) are switched off;
* **correlation** - every event goes through a :class:`~.call_tracker.CallTracker`, which turns
  it into call events keyed by the call id (the AudioSocket UUID). With ``Async: true`` the
  ``OriginateResponse`` never reaches an event handler: panoramisk returns it in
  ``send_action``'s result list, correlated by ActionID (DESIGN.md "Known traps"), and
  :meth:`AmiDialer.originate` feeds it to the tracker from there;
* **after a reconnect** - events sent while disconnected are lost, so a ``Status`` listing
  (with the ``CALLAGENT_UUID`` variable) re-links live channels to their calls and ends the
  calls that disappeared; pending Originates get their outcome from the next Newstate/Hangup;
* **hand-over** - ``Redirect`` moves the caller's channel; ``BlindTransfer`` is sent on the
  call's AudioSocket leg, because Asterisk transfers the bridge *peer* of the channel it is
  given (DESIGN.md "Known traps"): sent on the caller's channel it hands the *agent* to the
  target and hangs the caller up;
* **safety** - every header value is checked for line breaks before it is sent (an AMI header
  injection would be a second, attacker-written action), numbers must be plain digits, and
  :meth:`AmiDialer.transfer` goes only to allow-listed targets (:mod:`.transfer`).

Call events are delivered to listeners (:meth:`AmiClient.subscribe`): the store will persist
them (ids, not ORM objects - DESIGN.md practice 11). A listener that raises is logged; it neither
breaks the connection nor other listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from callagent.settings import AsteriskSettings
from callagent.telephony.asterisk.ami_protocol import AmiMessage, check_header
from callagent.telephony.asterisk.call_tracker import (
    VERDICT_WAIT_S,
    CallEvent,
    CallState,
    CallTracker,
    DialOutcome,
    InboundCallStarted,
    OriginateResult,
)
from callagent.telephony.asterisk.config import CALL_ID_VARIABLE, OUTBOUND_CONTEXT, TRUNK_ENDPOINT
from callagent.telephony.asterisk.transfer import TransferAllowList

log = logging.getLogger(__name__)

ORIGINATE_MARGIN_S: Final = 15.0
"""How long past the ring timeout an Originate may take to report (AMD runs after answer, but
the answer itself already resolves :meth:`AmiDialer.originate`)."""

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_CALLER_NAME = re.compile(r"[\w .,'&-]{0,40}")
_DTMF = re.compile(r"[0-9*#A-D]{1,32}")

CallEventListener = Callable[[CallEvent], None]


PANORAMISK_LOGGERS: Final = ("panoramisk", "panoramisk.manager", "panoramisk.ami_protocol")
"""The loggers panoramisk writes to (the protocol logs through its manager's once connected)."""

MASK: Final = "********"

# An action as panoramisk prints it: header lines ("Secret: x") or a dict repr ('Secret': 'x').
_SECRET_LINE = re.compile(r"(?im)^([ \t]*secret[ \t]*:[ \t]*)[^\r\n]+")
_SECRET_REPR = re.compile(r"""(?i)(['"]secret['"]\s*:\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


class SecretFilter(logging.Filter):
    """Masks AMI secrets in panoramisk's log records.

    panoramisk logs whole actions in places - the pending Login, ``Secret`` and all, when the
    connection drops before Asterisk answers it (DESIGN.md "Known traps"). Every ``Secret``
    header is masked, and so is any secret an :class:`AmiClient` registered wherever else it
    shows up; the record then carries the masked text instead of its format and arguments.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by :data:`MASK`."""
        text = _SECRET_LINE.sub(lambda m: m.group(1) + MASK, text)
        text = _SECRET_REPR.sub(lambda m: f"{m.group(1)}'{MASK}'", text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error report
            return True
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


SECRET_FILTER: Final = SecretFilter()


def install_secret_filter(secret: str) -> None:
    """Mask ``secret`` (and every ``Secret`` header) in whatever panoramisk logs, from now on
    (idempotent: one filter per logger however many clients register)."""
    if secret:
        SECRET_FILTER.secrets.add(secret)
    for name in PANORAMISK_LOGGERS:
        logger = logging.getLogger(name)
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)


class AmiError(Exception):
    """An AMI operation did not succeed."""


class AmiNotConnected(AmiError):
    """There is no logged-in AMI connection right now (it is being re-established)."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``; the message is Asterisk's."""


class AmiLoginError(AmiError):
    """Asterisk refused the login (wrong user or secret, or a host not permitted)."""


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: ``initial_s`` doubling up to ``max_s``, each
    spread by ±``jitter`` so many callagent nodes do not reconnect in lockstep."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delays(self) -> Iterator[float]:
        """An endless sequence of delays; start a new one after a successful login."""
        for attempt in itertools.count():
            base = min(self.max_s, self.initial_s * self.factor**attempt)
            yield base * random.uniform(1 - self.jitter, 1 + self.jitter)


def to_ami_message(message: Message) -> AmiMessage:
    """A panoramisk message as an :class:`AmiMessage` (``Event`` / ``Response`` first;
    repeated headers, which panoramisk groups into a list, stay repeated)."""
    headers: list[tuple[str, str]] = []
    for key, value in message.items():
        if key == "content":  # panoramisk keeps a response body under this key, not a header
            continue
        for item in value if isinstance(value, list) else [value]:
            headers.append((key, str(item)))
    headers.sort(key=lambda kv: kv[0].casefold() not in ("event", "response"))
    return AmiMessage(tuple(headers))


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A response nobody waits for any more (timed out, connection lost) must not be reported
    # as "exception never retrieved" when it is garbage collected.
    if not future.cancelled():
        future.exception()


def _check_action(action: Mapping[str, str | Sequence[str]]) -> None:
    for key, value in action.items():
        for item in [value] if isinstance(value, str) else value:
            check_header(key, item)


class _Manager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's Manager with the connection lifecycle handed to :class:`AmiClient`."""

    def __init__(self, owner: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self._owner = owner
        # panoramisk replays queued actions on FullyBooted; never replay (see module docstring).
        self.callbacks.pop("FullyBooted", None)
        self.patterns = [(p, r) for p, r in self.patterns if p != "FullyBooted"]

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("AmiClient owns connecting")

    def ping(self) -> None:
        """panoramisk's timer-driven ping; AmiClient pings itself and checks the answer."""

    def connection_lost(self, exc: Exception | None) -> None:
        # Instead of panoramisk's fixed-delay reconnect: tell the client's supervisor.
        self._connected = False
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()
        self._owner._on_connection_lost(exc)


class AmiClient:
    """One AMI connection, kept alive for as long as the client runs.

    ``async with AmiClient(...) as ami`` (or :meth:`start` / :meth:`close`). :meth:`send_action`
    raises :class:`AmiNotConnected` while reconnecting: callers decide whether to wait
    (:meth:`wait_connected`) or give up - nothing is queued behind their back.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 5.0,
        action_timeout_s: float = 10.0,
        ping_interval_s: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._secret = secret
        install_secret_filter(secret)  # before panoramisk can log the Login action
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout_s
        self._action_timeout = action_timeout_s
        self._ping_interval = ping_interval_s
        self.tracker = CallTracker()
        self.logins = 0
        """Successful logins so far (the first connection and every reconnection)."""
        self._manager: _Manager | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._inflight: set[asyncio.Future[Any]] = set()
        self._listeners: list[CallEventListener] = []
        self._outcome_waiters: dict[uuid.UUID, asyncio.Future[OriginateResult]] = {}
        self._call_waiters: dict[uuid.UUID, list[asyncio.Future[CallState]]] = {}

    @classmethod
    def from_settings(cls, settings: AsteriskSettings, **kwargs: Any) -> AmiClient:
        """A client for the AMI account of ``settings`` (the one ``manager.conf`` defines)."""
        if not settings.ami_secret:
            raise ValueError("asterisk.ami_secret is not set")
        return cls(
            settings.ami_host,
            settings.ami_port,
            settings.ami_username,
            settings.ami_secret,
            **kwargs,
        )

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self._connected.is_set()

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is not None:
            raise RuntimeError("the AMI client is already started")
        self._task = asyncio.create_task(self._run(), name="ami-client")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until logged in; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    async def close(self) -> None:
        """Log off (best effort), close the connection and stop reconnecting."""
        self._closing = True
        if self.connected:
            with contextlib.suppress(AmiError, TimeoutError):
                await self.send_action({"Action": "Logoff"}, timeout_s=1.0)
        if self._manager is not None:
            self._manager.close()
        self._on_connection_lost(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for waiter in [*self._outcome_waiters.values()]:
            waiter.cancel()
        for waiters in self._call_waiters.values():
            for call_waiter in waiters:
                call_waiter.cancel()

    async def __aenter__(self) -> AmiClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- events -----------------------------------------------------------------------------

    def subscribe(self, listener: CallEventListener) -> Callable[[], None]:
        """Call ``listener`` with every call event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def deliver(self, events: Sequence[CallEvent]) -> None:
        """Hand call events to the waiters and listeners (used by the dialer too)."""
        for event in events:
            log.info("AMI call event: %s", event)
            if isinstance(event, OriginateResult):
                waiter = self._outcome_waiters.pop(event.call_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
            if isinstance(event, InboundCallStarted):
                state = self.tracker.get(event.call_id)
                for call_waiter in self._call_waiters.pop(event.call_id, []):
                    if state is not None and not call_waiter.done():
                        call_waiter.set_result(state)
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("call event listener failed on %s", event)

    def outcome_waiter(self, call_id: uuid.UUID) -> asyncio.Future[OriginateResult]:
        """A future resolved with the call's :class:`OriginateResult`."""
        waiter = self._outcome_waiters.get(call_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._outcome_waiters[call_id] = waiter
        return waiter

    async def wait_for_call(self, call_id: uuid.UUID, timeout_s: float = 2.0) -> CallState | None:
        """The call's state once AMI announced it, or ``None`` after ``timeout_s``.

        The AudioSocket connection of an inbound call can arrive before the dialplan's
        ``CallagentInbound`` event has been read, so the call handler waits a little here for
        the DID and caller id that route the call.
        """
        state = self.tracker.get(call_id)
        if state is not None:
            return state
        waiter: asyncio.Future[CallState] = asyncio.get_running_loop().create_future()
        self._call_waiters.setdefault(call_id, []).append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            return None
        finally:
            waiters = self._call_waiters.get(call_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._call_waiters.pop(call_id, None)

    def _on_event(self, manager: Manager, message: Message) -> None:
        try:
            events = self.tracker.handle(to_ami_message(message))
        except Exception:  # a tracker bug must not take the AMI connection with it
            log.exception("AMI event %r could not be handled", message)
            return
        self.deliver(events)

    # --- actions ------------------------------------------------------------------------------

    async def send_action(
        self,
        action: Mapping[str, str | Sequence[str]],
        *,
        timeout_s: float | None = None,
    ) -> list[AmiMessage]:
        """Send one action and return its response (and, for list actions, the events that
        belong to it). Raises :class:`AmiActionError` on ``Response: Error``,
        :class:`AmiNotConnected`, ``TimeoutError``, or ``ValueError`` for a header that would
        break the framing."""
        messages = await self.send_raw(action, timeout_s=timeout_s)
        first = messages[0]
        if first.get("Response") not in ("Success", "Goodbye", "Follows"):
            raise AmiActionError(f"{action.get('Action')}: {first.get('Message', first.name)}")
        return messages

    async def send_raw(
        self,
        action: Mapping[str, str | Sequence[str]],
        *,
        timeout_s: float | None = None,
    ) -> list[AmiMessage]:
        """Like :meth:`send_action`, without raising on ``Response: Error``."""
        future, action_id = self.submit(action)
        try:
            async with asyncio.timeout(timeout_s or self._action_timeout):
                result = await asyncio.shield(future)
        except TimeoutError:
            self.forget(action_id)
            raise
        messages = result if isinstance(result, list) else [result]
        return [to_ami_message(m) for m in messages]

    def submit(self, action: Mapping[str, str | Sequence[str]]) -> tuple[asyncio.Future[Any], str]:
        """Send an action and return panoramisk's future for its response(s) and its ActionID;
        the future fails with :class:`AmiNotConnected` if the connection drops first."""
        _check_action(action)
        manager = self._manager
        if manager is None or not self.connected or manager.protocol is None:
            raise AmiNotConnected("not connected to Asterisk's AMI")
        panoramisk_action = Action(
            {key: list(v) if not isinstance(v, str) else v for key, v in action.items()}
        )
        future: asyncio.Future[Any] = manager.send_action(panoramisk_action)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        future.add_done_callback(_retrieve)
        return future, panoramisk_action.action_id

    def forget(self, action_id: str) -> None:
        """Drop the response slot of an action that timed out."""
        # A response that never came stays in panoramisk's table forever unless removed.
        if self._manager is not None and self._manager.protocol is not None:
            self._manager.protocol.responses.pop(action_id, None)

    # --- connection ---------------------------------------------------------------------------

    def _on_connection_lost(self, exc: Exception | None) -> None:
        if self._closing:
            log.info("AMI connection to %s:%d closed", self._host, self._port)
        elif self.connected or exc is not None:
            log.warning("AMI connection to %s:%d lost: %r", self._host, self._port, exc)
        self._connected.clear()
        for future in list(self._inflight):
            if not future.done():
                future.set_exception(AmiNotConnected("the AMI connection was lost"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _run(self) -> None:
        delays = self._backoff.delays()
        while not self._closing:
            try:
                logged_in = await self._connect_once()
            except (OSError, TimeoutError, AmiError) as exc:
                log.warning("AMI connection to %s:%d failed: %r", self._host, self._port, exc)
                logged_in = False
            if self._closing:
                return
            if logged_in:
                delays = self._backoff.delays()
            delay = next(delays)
            log.info("reconnecting to AMI in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> bool:
        """Connect, log in, resync, then serve until the connection is lost. Returns whether
        the login succeeded (so the backoff starts over)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            transport, protocol = await loop.create_connection(AMIProtocol, self._host, self._port)
        self._lost = loop.create_future()
        manager = _Manager(
            self,
            host=self._host,
            port=self._port,
            username=self._username,
            secret=self._secret,
            events="on",
            loop=loop,
            ping_delay=10**9,  # AmiClient pings itself
            forgetable_actions=(),
        )
        manager.register_event("*", self._on_event)
        self._manager = manager
        connected: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        connected.set_result((transport, protocol))
        manager.connection_made(connected)  # sends Login
        login = manager.authenticated_future
        done, _ = await asyncio.wait(
            {login, self._lost}, timeout=self._action_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if login not in done:
            manager.close()
            raise AmiNotConnected("the connection ended before the login was answered")
        response = login.result()
        if not response.success:
            manager.close()
            raise AmiLoginError(f"AMI login as {self._username!r} refused: {response.message}")
        self.logins += 1
        self._connected.set()
        log.info("AMI: logged in to %s:%d as %s", self._host, self._port, self._username)
        if self.logins > 1:
            self.tracker.mark_originate_response_lost()
            await self._resync()
        await self._keepalive()
        return True

    async def _resync(self) -> None:
        try:
            messages = await self.send_action(
                {"Action": "Status", "Variables": CALL_ID_VARIABLE}, timeout_s=self._action_timeout
            )
        except (AmiError, TimeoutError) as exc:
            log.warning("AMI: could not list channels after reconnecting: %r", exc)
            return
        statuses = [m for m in messages if m.get("Event") == "Status"]
        self.deliver(self.tracker.resync(statuses))

    async def _keepalive(self) -> None:
        lost = self._lost
        assert lost is not None
        while not lost.done():
            done, _ = await asyncio.wait({lost}, timeout=self._ping_interval)
            if done:
                return
            try:
                await self.send_action({"Action": "Ping"}, timeout_s=self._action_timeout)
            except (AmiError, TimeoutError) as exc:
                if lost.done():
                    return
                log.warning("AMI did not answer a Ping (%r); reconnecting", exc)
                if self._manager is not None and self._manager.protocol is not None:
                    self._manager.protocol.transport.abort()
                await lost


class TransferMethod(enum.Enum):
    """How a call is handed over; both end with the caller talking to the target (verified on
    a real Asterisk 22.10.1, docs/telephony.md "Hand-over, hang-up, DTMF")."""

    REDIRECT = "Redirect"
    """Move the caller's channel to the target in the dialplan; the AudioSocket leg ends. Works
    for both ``AudioSocket()`` and ``Dial(AudioSocket/...)`` (the channel leaves its bridge)."""

    BLIND_TRANSFER = "BlindTransfer"
    """Asterisk's blind transfer, sent on the call's AudioSocket leg: Asterisk moves that
    channel's bridge peer - the caller - to the target and hangs the AudioSocket leg up. Only
    for ``Dial(AudioSocket/...)`` calls (``audiosocket_format = slin16``): ``AudioSocket()``
    puts the caller in no bridge."""


class AmiDialer:
    """Call control over AMI: originate, hang up, send DTMF, hand over.

    ``originate`` has the shape the dialer's ``CallPlacer`` protocol needs (a number and a call
    id in, an outcome out); everything takes and returns call ids, never ORM objects.
    """

    def __init__(
        self,
        client: AmiClient,
        *,
        transfers: TransferAllowList,
        trunk_endpoint: str = TRUNK_ENDPOINT,
        context: str = OUTBOUND_CONTEXT,
        caller_id: str = "",
        ring_timeout_s: float = 30.0,
    ) -> None:
        self.client = client
        self._transfers = transfers
        self._trunk = trunk_endpoint
        self._context = context
        self._caller_id = caller_id
        self._ring_timeout = ring_timeout_s

    @classmethod
    def from_settings(cls, client: AmiClient, settings: AsteriskSettings) -> AmiDialer:
        """A dialer with the trunk, caller id, ring timeout and allow-list of ``settings``."""
        return cls(
            client,
            transfers=TransferAllowList(settings.transfer_map()),
            caller_id=settings.trunk_caller_id,
            ring_timeout_s=settings.originate_timeout_s,
        )

    async def originate(
        self,
        number: str,
        *,
        call_id: uuid.UUID | None = None,
        caller_id: str | None = None,
        caller_name: str = "",
        ring_timeout_s: float | None = None,
    ) -> OriginateResult:
        """Call ``number`` and return once it is answered or has failed (see
        :meth:`start_originate` for the arguments and errors)."""
        waiter = self.start_originate(
            number,
            call_id=call_id,
            caller_id=caller_id,
            caller_name=caller_name,
            ring_timeout_s=ring_timeout_s,
        )
        return await asyncio.shield(waiter)

    def start_originate(
        self,
        number: str,
        *,
        call_id: uuid.UUID | None = None,
        caller_id: str | None = None,
        caller_name: str = "",
        ring_timeout_s: float | None = None,
    ) -> asyncio.Future[OriginateResult]:
        """Start calling ``number`` through the trunk; returns at once with a future of the
        outcome (also delivered to listeners as an :class:`OriginateResult` event).

        The callee is connected to the outbound context (AMD, then AudioSocket with ``call_id``
        as UUID). ``caller_id`` is a number; ``caller_name`` a short plain name. Raises
        ``ValueError`` for a number or caller id that is not plain digits (nothing reaches
        Asterisk then) and :class:`AmiNotConnected` while the connection is down. If Asterisk
        never reports, the call counts as failed ``ORIGINATE_MARGIN_S`` after the ring timeout.
        """
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"{number!r} is not a phone number (digits, optional leading +)")
        caller = self._caller_id if caller_id is None else caller_id
        if caller and not _NUMBER.fullmatch(caller):
            raise ValueError(f"caller id {caller!r} is not a phone number")
        if not _CALLER_NAME.fullmatch(caller_name):
            raise ValueError(f"caller name {caller_name!r} has characters AMI cannot carry")
        call_id = call_id or uuid.uuid4()
        timeout_s = self._ring_timeout if ring_timeout_s is None else ring_timeout_s
        action: dict[str, str | list[str]] = {
            "Action": "Originate",
            "Channel": f"PJSIP/{number}@{self._trunk}",
            "Context": self._context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(timeout_s * 1000)),
            # ChannelId makes the call id the channel's Uniqueid: every later event names it.
            "ChannelId": str(call_id),
            "Variable": [f"{CALL_ID_VARIABLE}={call_id}"],
            "Async": "true",
        }
        if caller:
            action["CallerID"] = f'"{caller_name}" <{caller}>' if caller_name else caller
        tracker = self.client.tracker
        tracker.expect_outbound(call_id, number)
        waiter = self.client.outcome_waiter(call_id)
        try:
            future, action_id = self.client.submit(action)
        except AmiError:
            self.client.deliver(tracker.originate_failed(call_id, "not connected"))
            raise
        future.add_done_callback(lambda f: self._originate_answered(call_id, f))
        timer = asyncio.get_running_loop().call_later(
            timeout_s + ORIGINATE_MARGIN_S, self._give_up, call_id, action_id
        )
        waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    def _give_up(self, call_id: uuid.UUID, action_id: str) -> None:
        self.client.forget(action_id)
        self.client.deliver(
            self.client.tracker.originate_failed(call_id, "no answer from Asterisk")
        )

    def _originate_answered(self, call_id: uuid.UUID, future: asyncio.Future[Any]) -> None:
        """panoramisk resolved the Originate: ``[Response, OriginateResponse]`` or an error."""
        if future.cancelled() or future.exception() is not None:
            # Connection lost before the OriginateResponse: the call may still be ringing.
            # Its outcome comes from the resync and the next Newstate/Hangup (CallTracker).
            return
        result = future.result()
        messages = [to_ami_message(m) for m in (result if isinstance(result, list) else [result])]
        tracker = self.client.tracker
        response = next((m for m in messages if m.get("Event") == "OriginateResponse"), None)
        if response is not None:
            self.client.deliver(tracker.originate_response(call_id, response))
            if tracker.verdict_pending(call_id):
                # "Reason: 0" and no hang-up cause yet: it follows within milliseconds, but a
                # lost event must not leave the outcome open for ever.
                asyncio.get_running_loop().call_later(VERDICT_WAIT_S, self._settle, call_id)
        elif messages[0].get("Response") != "Success":
            message = messages[0].get("Message") or "refused"
            self.client.deliver(tracker.originate_failed(call_id, message))

    def _settle(self, call_id: uuid.UUID) -> None:
        self.client.deliver(self.client.tracker.settle(call_id))

    def _channel(self, call_id: uuid.UUID) -> str:
        state = self.client.tracker.get(call_id)
        if state is None or not state.channel:
            raise AmiError(f"no channel known for call {call_id}")
        if state.ended is not None:
            raise AmiError(f"call {call_id} has ended")
        return state.channel

    def _audiosocket_leg(self, call_id: uuid.UUID) -> str:
        self._channel(call_id)  # known and not ended
        state = self.client.tracker.get(call_id)
        assert state is not None
        if not state.audiosocket_channel:
            raise AmiError(
                f"call {call_id} has no AudioSocket leg in a bridge: BlindTransfer needs "
                "Dial(AudioSocket/...) (audiosocket_format slin16); use Redirect"
            )
        return state.audiosocket_channel

    async def hangup(self, call_id: uuid.UUID, cause: int = 16) -> None:
        """Hang the call up with Q.850 ``cause`` (16: normal clearing)."""
        await self.client.send_action(
            {"Action": "Hangup", "Channel": self._channel(call_id), "Cause": str(cause)}
        )

    async def play_dtmf(self, call_id: uuid.UUID, digits: str, duration_ms: int = 250) -> None:
        """Send DTMF to the far end (AudioSocket cannot carry DTMF towards the caller)."""
        if not _DTMF.fullmatch(digits):
            raise ValueError(f"{digits!r} is not a string of DTMF digits")
        channel = self._channel(call_id)
        for digit in digits:
            await self.client.send_action(
                {
                    "Action": "PlayDTMF",
                    "Channel": channel,
                    "Digit": digit,
                    "Duration": str(duration_ms),
                    # Asterisk answers "DTMF successfully queued"; panoramisk takes any response
                    # ending in "successfully queued" for an async Originate and looks up the
                    # action's Async header - which must then exist, or its parser raises.
                    "Async": "false",
                }
            )

    async def transfer(
        self,
        call_id: uuid.UUID,
        target: str,
        *,
        method: TransferMethod = TransferMethod.REDIRECT,
    ) -> None:
        """Hand the call over to an allow-listed ``target`` (a name, never a number): the
        caller ends up talking to it (see :class:`TransferMethod`).

        Raises :class:`~.transfer.TransferRefused` - before anything is sent - for a name not
        on the allow-list, :class:`AmiError` for a call without the channel the method needs,
        :class:`AmiActionError` if Asterisk refuses. The hand-over is recorded once Asterisk
        accepted it, also when the caller's ``Hangup`` arrived before that answer.
        """
        destination = self._transfers.resolve(target)
        if method is TransferMethod.BLIND_TRANSFER:
            channel = self._audiosocket_leg(call_id)
        else:
            channel = self._channel(call_id)
        action: dict[str, str | list[str]] = {
            "Action": method.value,
            "Channel": channel,
            "Context": destination.context,
            "Exten": destination.extension,
        }
        if method is TransferMethod.REDIRECT:
            action["Priority"] = "1"
        await self.client.send_action(action)
        self.client.deliver(self.client.tracker.transferred(call_id, target))

    @property
    def transfer_targets(self) -> frozenset[str]:
        """Names the agent may hand a call over to."""
        return self._transfers.names

    def outcome(self, call_id: uuid.UUID) -> DialOutcome | None:
        """The outcome of an originated call, once known."""
        state = self.client.tracker.get(call_id)
        return state.outcome.outcome if state and state.outcome else None
