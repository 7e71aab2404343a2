"""An Asterisk stand-in for tests: AMI over TCP, plus the calls it connects to AudioSocket.

A fake that copies what the real peer was seen or documented to do (DESIGN.md practice 8). It
runs on the *rendered* configuration, and its scripted replies copy what a real Asterisk 22.10.1
sent to callagent's AMI account (tests/telephony/asterisk/test_real_asterisk.py prints every
message it receives; docs/telephony.md says what was verified). Each reply and where it comes
from:

* **AMI session** - banner ``Asterisk Call Manager/11.0.0`` (observed); ``Login`` checked
  against the users, secrets, ``permit`` networks and ``read``/``write`` classes of the rendered
  ``manager.conf`` (an action needs one of its privilege classes, events go only to sessions
  that may read their class: Asterisk's manager.c); ``Logoff``, ``Ping``, ``Status`` with
  ``Variables`` (manager.c; the Status listing itself was not observed);
* **an answered Originate** (observed): ``Newchannel`` in the trunk endpoint's context
  (``callagent-inbound``, exten ``s``) with the ChannelId as ``Uniqueid``, ``DialBegin``
  (``Dest*`` headers only: an Originate has no calling channel), ``Newstate Ringing``,
  ``DialState RINGING``, ``Newstate Up``, ``DialEnd ANSWER``, ``OriginateResponse Success
  Reason 4`` naming the channel, then the outbound dialplan: ``UserEvent CallagentAmd`` (the
  callee script names AMD's verdict) and the AudioSocket connection;
* **an unanswered Originate** (observed, :class:`Callee` ``sip``): ``OriginateResponse
  Response: Failure`` whose ``Channel`` is the dial string and whose ``Reason`` is 0 for
  every rejection - 486 (``HangupRequest``/``Hangup`` ``Cause 17``, ``TechCause 486``,
  ``DialEnd BUSY``), 503 (34, CONGESTION), 404 (1, NOANSWER), 603 (21, NOANSWER) - and 3 for
  ringing past the Originate's timeout (``Hangup Cause 19 TechCause 480``, no HangupRequest);
  the response's place among the hang-up events varied between runs, so a callee says where
  it goes (``order``); an endpoint Asterisk cannot dial gives only the Failure, ``Reason 0``,
  with the ChannelId as ``Uniqueid`` and no channel events at all;
* **the AudioSocket leg** (observed) - with ``Dial(AudioSocket/...)`` (``c(slin16)``) a second
  channel ``AudioSocket/<host:port>-<uuid>`` (context ``default``) that the call's channel
  dials (``DialBegin`` / ``Newstate Up`` / ``DialEnd ANSWER``) and is bridged with; with
  ``AudioSocket()`` (slin) no second channel;
* **hang-ups** (observed) - a far end hanging up in ``Dial`` mode: ``HangupRequest Cause 16``,
  ``SoftHangupRequest Cause 16``, the AudioSocket leg's ``Hangup 16``, the channel's
  ``Hangup 16``; with ``AudioSocket()``: ``HangupRequest`` without a cause, ``SoftHangupRequest
  Cause 16``, ``Hangup Cause 0 "Unknown"``; an AMI ``Hangup`` action: the channel's ``Hangup``
  with the action's cause (documented, not observed);
* **hand-over** - ``Redirect`` (observed) moves the named channel to the target (in ``Dial``
  mode its AudioSocket leg hangs up); ``BlindTransfer`` (observed) moves the named channel's
  bridge *peer* and hangs the named channel up, with a ``BlindTransfer`` event: on the caller's
  channel the AudioSocket leg - the agent - goes to the target; on the AudioSocket leg the
  caller does. A channel in no bridge gets ``Transfer invalid`` (manager.c, not observed); the
  target answers and the call ends after ``transfer_hold_s``;
* ``PlayDTMF`` (``DTMF successfully queued``, observed), ``DTMFBegin``/``DTMFEnd`` for a far
  end's keys (observed), ``UserEvent CallagentInbound`` from the inbound dialplan (observed),
  ``VarSet`` (class dialplan, which callagent's account must not receive);
* **AudioSocket** - an answered call is connected to callagent's AudioSocket server as Asterisk
  would (:func:`callagent.telephony.asterisk.loopback_caller.simulate_call`: UUID first,
  continuous 20 ms frames, socket close as hang-up), with the far end's scripted utterances.

What is *not* simulated: SIP, codecs, real AMD signal analysis, bridge events
(``BridgeEnter``/``BridgeLeave``), ``NewCallerid``/``NewConnectedLine``, dialplan applications
beyond those the rendered dialplan uses; never observed: the text of AMI errors (e.g. a
Redirect to a missing extension) and the ``Status`` listing (docs/telephony.md "What remains
unverified").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from callagent.telephony.asterisk.ami_protocol import AmiMessage
from callagent.telephony.asterisk.config import (
    AMD_EVENT,
    CALL_ID_VARIABLE,
    CONNECT_CONTEXT,
    INBOUND_CONTEXT,
    INBOUND_EVENT,
    OUTBOUND_CONTEXT,
    TRUNK_ENDPOINT,
)
from callagent.telephony.asterisk.config_check import ConfSection, parse_conf
from callagent.telephony.asterisk.loopback_caller import LoopbackCallResult, simulate_call

from fakes.ami_connection import AmiConnection, AmiProtocolError, Role

log = logging.getLogger(__name__)

VERSION: Final = "11.0.0"
READ_CHUNK: Final = 4096

ACTION_PRIVILEGES: Final[Mapping[str, frozenset[str]]] = {
    # The authority Asterisk registers each action with; a user needs one of the classes.
    "originate": frozenset({"originate"}),
    "redirect": frozenset({"call"}),
    "blindtransfer": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "playdtmf": frozenset({"call"}),
    "status": frozenset({"system", "call", "reporting"}),
    "ping": frozenset(),
    "logoff": frozenset(),
}

CAUSE_TEXT: Final[Mapping[int, str]] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
STATE_DESC: Final[Mapping[int, str]] = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}

ANSWER: Final = 200
""":attr:`Callee.sip`: the callee answers."""
RING_OUT: Final = 180
""":attr:`Callee.sip`: the callee rings and never answers (until the Originate's Timeout)."""
NO_CHANNEL: Final = 0
""":attr:`Callee.sip`: Asterisk cannot even dial (an endpoint that does not exist)."""


@dataclass(frozen=True)
class Rejection:
    """What a real Asterisk 22.10.1 reported when the callee answered the INVITE with a SIP
    error: the Q.850 cause of ``HangupRequest`` and ``Hangup`` and the ``DialEnd`` status (the
    OriginateResponse said ``Reason: 0`` for each)."""

    cause: int
    dial_status: str


SIP_REJECTIONS: Final[Mapping[int, Rejection]] = {
    486: Rejection(17, "BUSY"),
    503: Rejection(34, "CONGESTION"),
    404: Rejection(1, "NOANSWER"),
    603: Rejection(21, "NOANSWER"),
}
RING_OUT_CAUSE: Final = 19
RING_OUT_TECH_CAUSE: Final = 480
"""Ringing past the Originate's timeout: ``Hangup Cause 19 TechCause 480`` and ``Reason 3``."""

STEP_S: Final = 0.01
"""Between the events of an unanswered call's end (they came milliseconds apart)."""

Order = Literal["hangup_first", "request_first", "response_first"]
"""Where the OriginateResponse of an unanswered call goes among its hang-up events, each seen
on a real Asterisk: after the ``Hangup`` (503, a ring timeout), between the ``HangupRequest``
and the rest (486), or before them all (404, a ring timeout)."""


@dataclass(frozen=True)
class Callee:
    """The far end of an Originate, scripted: what happens when the simulator dials it."""

    sip: int = ANSWER
    """How the callee answers the INVITE: :data:`ANSWER`, :data:`RING_OUT`, a rejection of
    :data:`SIP_REJECTIONS` (486 busy, 503, 404, 603), or :data:`NO_CHANNEL`."""
    order: Order = "hangup_first"
    """Where the OriginateResponse of an unanswered call goes (:data:`Order`)."""
    ring_s: float = 0.05
    """How long it rings before it answers (or rejects the call)."""
    amd_status: str = "HUMAN"
    amd_cause: str = "HUMAN-800-800"
    amd_s: float = 0.05
    amd_reported_late_s: float | None = None
    """Deliver AMD's ``CallagentAmd`` event this long after the AudioSocket connection instead
    of before it. Asterisk sends it first (the dialplan's order), but AMI and AudioSocket are
    separate TCP connections and panoramisk hands events over later than it read them
    (docs/telephony.md), so callagent can see the verdict after the agent started speaking."""
    utterances: tuple[bytes | str, ...] = ()
    """What the callee says once connected (PCM at the call's rate, or DTMF key strings)."""
    pause_after_agent_s: float = 0.4
    final_wait_s: float = 0.5
    max_wait_for_agent_s: float = 5.0


@dataclass
class SimulatedChannel:
    """One channel of the simulated Asterisk and what happened on it."""

    name: str
    uniqueid: str
    context: str
    exten: str
    caller_num: str = ""
    state: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    conversation: asyncio.Task[LoopbackCallResult] | None = None
    """The AudioSocket connection this channel holds: the caller's with ``AudioSocket()``, the
    AudioSocket leg's with ``Dial(AudioSocket/...)``."""
    result: LoopbackCallResult | None = None
    hangup_cause: int | None = None
    redirected_to: tuple[str, str] | None = None
    peer: SimulatedChannel | None = None
    """The channel bridged with this one (a call's channel and its AudioSocket leg)."""
    dtmf_played: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    originate_caller_id: str = ""
    """The ``CallerID`` header of the Originate that made the channel, as sent (what the
    callee's phone would show; the simulator emits no NewCallerid events for it)."""

    @property
    def call_id(self) -> uuid.UUID | None:
        """The call id (CALLAGENT_UUID), once the dialplan or Originate set it."""
        value = self.variables.get(CALL_ID_VARIABLE)
        return uuid.UUID(value) if value else None


@dataclass
class _User:
    secret: str
    read: frozenset[str]
    write: frozenset[str]
    permits: list[ipaddress.IPv4Network | ipaddress.IPv6Network]


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    conn: AmiConnection
    peer: str
    user: _User | None = None
    events: frozenset[str] = frozenset({"all"})


def _classes(value: str | None) -> frozenset[str]:
    return frozenset(c.strip() for c in (value or "").split(",") if c.strip())


def _users(sections: list[ConfSection]) -> dict[str, _User]:
    users = {}
    for section in sections:
        if section.name == "general":
            continue
        permits = [ipaddress.ip_network(p, strict=False) for p in section.get_all("permit")]
        users[section.name] = _User(
            secret=section.get("secret") or "",
            read=_classes(section.get("read")),
            write=_classes(section.get("write")),
            permits=permits,
        )
    return users


def _allowed(have: frozenset[str], need: frozenset[str]) -> bool:
    return not need or "all" in have or bool(have & need)


class AmiSimulator:
    """Listens for AMI clients and plays Asterisk; see the module docstring.

    ``callees`` maps a dialed number to its :class:`Callee` (or is a function of the number);
    unknown numbers get ``Callee(reason=0)``.
    """

    def __init__(
        self,
        *,
        manager_conf: str,
        extensions_conf: str,
        callees: Mapping[str, Callee] | Callable[[str], Callee] | None = None,
        port: int = 0,
        transfer_hold_s: float = 0.1,
    ) -> None:
        manager = parse_conf(manager_conf, "manager.conf")
        general = next(s for s in manager if s.name == "general")
        self._bind = general.get("bindaddr") or "127.0.0.1"
        self._users = _users(manager)
        self._contexts: dict[str, dict[str, list[str]]] = {}
        self._globals: dict[str, str] = {}
        for section in parse_conf(extensions_conf, "extensions.conf"):
            if section.name == "globals":
                self._globals = dict(section.entries)
            elif section.name != "general":
                self._contexts[section.name] = self._extensions(section)
        host, _, audiosocket_port = self._globals["CALLAGENT_AUDIOSOCKET"].rpartition(":")
        self.audiosocket = (host, int(audiosocket_port))
        connect = " ".join(self._contexts[CONNECT_CONTEXT]["s"])
        self.sample_rate = 16_000 if "c(slin16)" in connect else 8_000
        self.dial_mode = "Dial(AudioSocket/" in connect
        """``Dial(AudioSocket/...)``: a second channel, bridged; else ``AudioSocket()``."""
        outbound = " ".join(self._contexts[OUTBOUND_CONTEXT]["s"])
        self.amd_enabled = "AMD()" in outbound
        self.hangup_on_machine = '"MACHINE"' in outbound
        self._callees = callees or {}
        self._requested_port = port
        self._transfer_hold_s = transfer_hold_s
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._sessions: set[_Session] = set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = itertools.count(1)
        self._closing = False
        self.channels: dict[str, SimulatedChannel] = {}
        """Every channel ever created, by Uniqueid."""
        self.actions: list[AmiMessage] = []
        """Every action received, in order (for assertions)."""
        self.delivered: list[tuple[str, AmiMessage]] = []
        """Every event written to a session: (user name, event)."""

    @staticmethod
    def _extensions(section: ConfSection) -> dict[str, list[str]]:
        extensions: dict[str, list[str]] = {}
        current = ""
        for key, value in section.entries:
            if key == "exten":
                current = value.split(",", 1)[0]
            extensions.setdefault(current, []).append(value)
        return extensions

    @property
    def port(self) -> int:
        """The AMI port actually bound."""
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for AMI clients (on the rendered ``bindaddr``)."""
        port = self._port if self._port is not None else self._requested_port
        self._server = await asyncio.start_server(self._accept, self._bind, port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        """Close the listener and every AMI session: Asterisk's AMI is gone (calls go on)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_sessions()

    async def drop_sessions(self) -> None:
        """Close every AMI connection (the listener stays): a network blip."""
        for session in list(self._sessions):
            session.writer.transport.abort()
        for task in list(self._session_tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """End every call and session and stop."""
        self._closing = True
        for channel in self.channels.values():
            if channel.conversation is not None:
                channel.conversation.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self.channels.values():
            if channel.conversation is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await channel.conversation
        await self.stop_listening()

    async def __aenter__(self) -> AmiSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- sessions -----------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer), name="ami-sim-session")
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        session = _Session(writer, AmiConnection(Role.SERVER), peer)
        self._sessions.add(session)
        writer.write(session.conn.send_banner(VERSION))
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                session.conn.receive_data(data)
                while (message := session.conn.next_event()) is not None:
                    assert isinstance(message, AmiMessage)
                    if not await self._action(session, message):
                        return
                if not data:
                    return
        except AmiProtocolError as exc:
            # A broken client ends its own session, nothing else (DESIGN.md practice 2).
            log.warning("AMI simulator: session from %s broke the protocol: %s", peer, exc)
        except (ConnectionError, OSError):
            pass
        except Exception:  # a simulator bug shows in the test log, ends only this session
            log.exception("AMI simulator: session from %s failed", peer)
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    def _send(self, session: _Session, *headers: tuple[str, str]) -> None:
        if not session.writer.transport.is_closing():
            session.writer.write(session.conn.send(AmiMessage(headers)))

    def _reply(
        self,
        session: _Session,
        action: AmiMessage,
        response: str,
        message: str,
        *extra: tuple[str, str],
    ) -> None:
        headers = [("Response", response)]
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        self._send(session, *headers, ("Message", message), *extra)

    async def _action(self, session: _Session, action: AmiMessage) -> bool:
        """Handle one action; ``False`` ends the session."""
        self.actions.append(action)
        if action.kind != "action":
            self._reply(session, action, "Error", "Missing action in request")
            return True
        name = action.name.lower()
        if name == "login":
            self._login(session, action)
            return True
        if name == "logoff":
            self._reply(session, action, "Goodbye", "Thanks for all the fish.")
            return False
        if session.user is None:
            self._reply(session, action, "Error", "Authentication Required")
            return True
        if name not in ACTION_PRIVILEGES:
            self._reply(session, action, "Error", "Invalid/unknown command")
            return True
        if not _allowed(session.user.write, ACTION_PRIVILEGES[name]):
            self._reply(session, action, "Error", "Permission denied")
            return True
        handler = getattr(self, f"_action_{name}")
        handler(session, action)
        return True

    def _login(self, session: _Session, action: AmiMessage) -> None:
        user = self._users.get(action.get("Username") or "")
        address = ipaddress.ip_address(session.peer)
        permitted = user is not None and any(address in net for net in user.permits)
        if user is None or user.secret != action.get("Secret") or not permitted:
            self._reply(session, action, "Error", "Authentication failed")
            return
        session.user = user
        events = (action.get("Events") or "on").lower()
        session.events = frozenset({"all"}) if events == "on" else _classes(events)
        if events == "off":
            session.events = frozenset()
        self._reply(session, action, "Success", "Authentication accepted")
        self._send(
            session,
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", "100"),
            ("LastReload", "100"),
            ("Status", "Fully Booted"),
        )

    def _action_ping(self, session: _Session, action: AmiMessage) -> None:
        headers = [("Response", "Success")]
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        self._send(session, *headers, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    # --- events -------------------------------------------------------------------------------

    def emit(self, event: str, privilege: str, *headers: tuple[str, str]) -> None:
        """Send an event of class ``privilege`` to every session allowed to read it (tests use
        it to inject malformed events)."""
        message = AmiMessage((("Event", event), ("Privilege", f"{privilege},all"), *headers))
        for session in list(self._sessions):
            user = session.user
            if user is None:
                continue
            if not _allowed(user.read, frozenset({privilege})):
                continue
            if not _allowed(session.events, frozenset({privilege})):
                continue
            self.delivered.append((self._user_name(user), message))
            with contextlib.suppress(OSError, ValueError):
                self._send(session, *message.headers)

    def _user_name(self, user: _User) -> str:
        return next(name for name, u in self._users.items() if u is user)

    @staticmethod
    def _snapshot(channel: SimulatedChannel, prefix: str = "") -> tuple[tuple[str, str], ...]:
        """A channel's headers as Asterisk writes them (``prefix`` "Dest" in Dial events)."""
        return tuple(
            (prefix + key, value)
            for key, value in (
                ("Channel", channel.name),
                ("ChannelState", str(channel.state)),
                ("ChannelStateDesc", STATE_DESC.get(channel.state, "Unknown")),
                ("CallerIDNum", channel.caller_num or "<unknown>"),
                ("CallerIDName", "<unknown>"),
                ("ConnectedLineNum", "<unknown>"),
                ("ConnectedLineName", "<unknown>"),
                ("Language", "en"),
                ("AccountCode", ""),
                ("Context", channel.context),
                ("Exten", channel.exten),
                ("Priority", "1"),
                ("Uniqueid", channel.uniqueid),
                ("Linkedid", channel.uniqueid),
            )
        )

    def _new_channel(
        self, name: str, uniqueid: str, context: str, exten: str, caller: str, state: int
    ) -> SimulatedChannel:
        channel = SimulatedChannel(name, uniqueid, context, exten, caller, state)
        self.channels[uniqueid] = channel
        self.emit("Newchannel", "call", *self._snapshot(channel))
        return channel

    def _set_state(self, channel: SimulatedChannel, state: int) -> None:
        channel.state = state
        self.emit("Newstate", "call", *self._snapshot(channel))

    def _set_variable(self, channel: SimulatedChannel, name: str, value: str) -> None:
        channel.variables[name] = value
        self.emit(
            "VarSet", "dialplan", *self._snapshot(channel), ("Variable", name), ("Value", value)
        )

    def _user_event(self, channel: SimulatedChannel, name: str, *body: tuple[str, str]) -> None:
        self.emit("UserEvent", "user", *self._snapshot(channel), ("UserEvent", name), *body)

    def _dial_event(
        self,
        event: str,
        dest: SimulatedChannel,
        caller: SimulatedChannel | None,
        *extra: tuple[str, str],
    ) -> None:
        """DialBegin / DialState / DialEnd: an Originate's dial has no calling channel, so only
        the ``Dest*`` headers (observed)."""
        headers = self._snapshot(caller) if caller is not None else ()
        self.emit(event, "call", *headers, *self._snapshot(dest, "Dest"), *extra)

    def _hangup_request(
        self,
        channel: SimulatedChannel,
        cause: int | None,
        tech_cause: int | None = None,
        event: str = "HangupRequest",
    ) -> None:
        """``HangupRequest`` / ``SoftHangupRequest``: the cause to come, when there is one, and
        no ``Cause-txt`` (observed)."""
        extra = [("Cause", str(cause))] if cause is not None else []
        extra += [("TechCause", str(tech_cause))] if tech_cause is not None else []
        self.emit(event, "call", *self._snapshot(channel), *extra)

    def hang_up(self, channel: SimulatedChannel, cause: int, tech_cause: int | None = None) -> None:
        """The channel hangs up with Q.850 ``cause``: the AudioSocket connection it holds
        closes and a Hangup event goes out (a far end hanging up, or an AMI Hangup action). A
        call's channel takes its bridged AudioSocket leg with it, whose Hangup comes first
        (observed)."""
        if channel.hangup_cause is not None:
            return
        channel.hangup_cause = cause
        peer = self._unbridge(channel)
        if channel.conversation is not None and not channel.conversation.done():
            channel.conversation.cancel()  # Asterisk closes the AudioSocket connection
        if peer is not None and peer.name.startswith("AudioSocket/"):
            self.hang_up(peer, 16)
        extra = [("TechCause", str(tech_cause))] if tech_cause is not None else []
        self.emit(
            "Hangup",
            "call",
            *self._snapshot(channel),
            ("Cause", str(cause)),
            ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
            *extra,
        )
        channel.ended.set()

    @staticmethod
    def _unbridge(channel: SimulatedChannel) -> SimulatedChannel | None:
        peer = channel.peer
        if peer is not None:
            peer.peer = None
            channel.peer = None
        return peer

    def _far_end_hangs_up(self, channel: SimulatedChannel) -> None:
        """The caller (or callee) sends BYE: what Asterisk reported, by connect mode."""
        if self.dial_mode:
            self._hangup_request(channel, 16)
            self._hangup_request(channel, 16, event="SoftHangupRequest")
            self.hang_up(channel, 16)
        else:
            # AudioSocket(): the request carries no cause and the Hangup says 0 "Unknown".
            self._hangup_request(channel, None)
            self._hangup_request(channel, 16, event="SoftHangupRequest")
            self.hang_up(channel, 0)

    def press(self, channel: SimulatedChannel, digit: str) -> None:
        """The far end presses a key: DTMFBegin and DTMFEnd (class dtmf)."""
        for event, extra in (("DTMFBegin", ()), ("DTMFEnd", (("DurationMs", "120"),))):
            self.emit(
                event,
                "dtmf",
                *self._snapshot(channel),
                ("Digit", digit),
                *extra,
                ("Direction", "Received"),
            )

    def live_channel(self, call_id: uuid.UUID) -> SimulatedChannel | None:
        """The channel carrying ``call_id``, if it has not hung up."""
        for channel in self.channels.values():
            if channel.call_id == call_id and channel.hangup_cause is None:
                return channel
        return None

    def audiosocket_leg(self, channel: SimulatedChannel) -> SimulatedChannel | None:
        """The AudioSocket leg ``channel`` dialled (``Dial`` mode), whether or not it is still
        bridged with it."""
        call_id = channel.call_id
        for other in self.channels.values():
            if other.name.startswith("AudioSocket/") and other.name.endswith(f"-{call_id}"):
                return other
        return None

    # --- calls --------------------------------------------------------------------------------

    def _callee(self, number: str) -> Callee:
        if callable(self._callees):
            return self._callees(number)
        return self._callees.get(number, Callee(sip=NO_CHANNEL))

    def _channel_by_name(self, name: str) -> SimulatedChannel | None:
        for channel in self.channels.values():
            if channel.name == name and channel.hangup_cause is None:
                return channel
        return None

    def _next_name(self) -> str:
        return f"PJSIP/{TRUNK_ENDPOINT}-{next(self._counter):08x}"

    def _action_originate(self, session: _Session, action: AmiMessage) -> None:
        context = action.get("Context") or ""
        exten = action.get("Exten") or ""
        if exten not in self._contexts.get(context, {}):
            self._reply(session, action, "Error", "Extension does not exist.")
            return
        uniqueid = action.get("ChannelId") or f"{time.time():.0f}.{next(self._counter)}"
        if uniqueid in self.channels:
            self._reply(session, action, "Error", "Uniqueid already in use.")
            return
        variables = action.variables()
        is_async = (action.get("Async") or "false").lower() in ("true", "yes", "1")
        if is_async:
            self._reply(session, action, "Success", "Originate successfully queued")
        self._spawn(
            self._originate(session, action, uniqueid, variables, is_async), "ami-sim-originate"
        )

    async def _originate(
        self,
        session: _Session,
        action: AmiMessage,
        uniqueid: str,
        variables: dict[str, str],
        is_async: bool,
    ) -> None:
        requested = action.get("Channel") or ""
        match = re.fullmatch(rf"PJSIP/(?P<number>[^@]+)@{TRUNK_ENDPOINT}", requested)
        callee = self._callee(match["number"]) if match else Callee(sip=NO_CHANNEL)
        timeout_s = int(action.get("Timeout") or "30000") / 1000

        def respond(reason: int, channel: SimulatedChannel | None = None) -> None:
            self._originate_response(session, action, uniqueid, reason, channel, is_async)

        if match is None or callee.sip == NO_CHANNEL:
            respond(0)  # no channel events at all (observed)
            return
        # An originated channel starts in its endpoint's context, the trunk's (observed).
        channel = self._new_channel(self._next_name(), uniqueid, INBOUND_CONTEXT, "s", "", 0)
        channel.originate_caller_id = action.get("CallerID") or ""
        for name, value in variables.items():
            self._set_variable(channel, name, value)
        self._dial_event("DialBegin", channel, None, ("DialString", f"{match[1]}@{TRUNK_ENDPOINT}"))
        rejection = SIP_REJECTIONS.get(callee.sip)
        if rejection is not None:
            await asyncio.sleep(min(callee.ring_s, timeout_s))
            await self._unanswered(
                channel, callee, respond, 0, rejection.cause, rejection.dial_status
            )
            return
        if callee.sip not in (ANSWER, RING_OUT):
            raise ValueError(f"the simulator does not know SIP {callee.sip}")
        self._set_state(channel, 5)
        self._dial_event("DialState", channel, None, ("DialStatus", "RINGING"))
        if callee.sip == ANSWER and callee.ring_s <= timeout_s:
            await asyncio.sleep(callee.ring_s)
            self._set_state(channel, 6)
            self._dial_event("DialEnd", channel, None, ("DialStatus", "ANSWER"))
            respond(4, channel)
            channel.context, channel.exten = action.get("Context") or "", "s"
            await self._outbound_dialplan(channel, callee)
            return
        await asyncio.sleep(timeout_s)
        await self._unanswered(
            channel, callee, respond, 3, RING_OUT_CAUSE, None, RING_OUT_TECH_CAUSE
        )

    async def _unanswered(
        self,
        channel: SimulatedChannel,
        callee: Callee,
        respond: Callable[[int], None],
        reason: int,
        cause: int,
        dial_status: str | None,
        tech_cause: int | None = None,
    ) -> None:
        """The end of a call nobody answered, in the callee's ``order`` (see :data:`Order`): a
        rejection's HangupRequest and DialEnd, the Hangup, and the OriginateResponse - a few
        milliseconds apart, as Asterisk sent them, so each reaches the client on its own."""
        tech = callee.sip if dial_status is not None else tech_cause
        steps: list[Callable[[], None]] = []
        if dial_status is not None:  # a rejection; a ring timeout gave neither (observed)
            steps.append(lambda: self._hangup_request(channel, cause, tech))
            steps.append(
                lambda: self._dial_event("DialEnd", channel, None, ("DialStatus", dial_status))
            )
        steps.append(lambda: self.hang_up(channel, cause, tech))
        place = {"response_first": 0, "request_first": min(1, len(steps) - 1)}
        steps.insert(place.get(callee.order, len(steps)), lambda: respond(reason))
        for i, step in enumerate(steps):
            if i:
                await asyncio.sleep(STEP_S)
            step()

    def _originate_response(
        self,
        session: _Session,
        action: AmiMessage,
        uniqueid: str,
        reason: int,
        channel: SimulatedChannel | None,
        is_async: bool,
    ) -> None:
        """An answered call's response names its channel; a failed one's repeats the dial
        string; ``Uniqueid`` is the ChannelId even when no channel was made (observed)."""
        headers: list[tuple[str, str]] = []
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        headers += [
            ("Response", "Success" if reason == 4 else "Failure"),
            ("Channel", channel.name if channel and reason == 4 else action.get("Channel") or ""),
            ("Context", action.get("Context") or ""),
            ("Exten", action.get("Exten") or ""),
            ("Reason", str(reason)),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", "<unknown>"),
            ("CallerIDName", "<unknown>"),
        ]
        if is_async:
            self._emit_to(session, "OriginateResponse", "call", *headers)
        elif reason == 4:
            self._reply(session, action, "Success", "Originate successfully queued")
        else:
            self._reply(session, action, "Error", "Originate failed")

    def _emit_to(
        self, session: _Session, event: str, privilege: str, *headers: tuple[str, str]
    ) -> None:
        # OriginateResponse goes to the session that asked (it carries that session's ActionID).
        if session in self._sessions and session.user is not None:
            message = AmiMessage((("Event", event), ("Privilege", f"{privilege},all"), *headers))
            self.delivered.append((self._user_name(session.user), message))
            self._send(session, *message.headers)

    async def _outbound_dialplan(self, channel: SimulatedChannel, callee: Callee) -> None:
        if self.amd_enabled:
            await asyncio.sleep(callee.amd_s)
            self._set_variable(channel, "AMDSTATUS", callee.amd_status)
            verdict = (
                ("CallId", channel.variables.get(CALL_ID_VARIABLE, "")),
                ("Status", callee.amd_status),
                ("Cause", callee.amd_cause),
            )
            if callee.amd_reported_late_s is None:
                self._user_event(channel, AMD_EVENT, *verdict)
            else:
                delay = callee.amd_reported_late_s

                async def report_late() -> None:
                    await asyncio.sleep(delay)
                    self._user_event(channel, AMD_EVENT, *verdict)

                self._spawn(report_late(), "ami-sim-late-amd")
            if self.hangup_on_machine and callee.amd_status == "MACHINE":
                self.hang_up(channel, 16)
                return
        await self._connect(channel, callee)

    def _dial_audiosocket(self, channel: SimulatedChannel, call_id: uuid.UUID) -> SimulatedChannel:
        """``Dial(AudioSocket/host:port/uuid/c(slin16))``: the leg, answered and bridged."""
        host, port = self.audiosocket
        leg = self._new_channel(
            f"AudioSocket/{host}:{port}-{call_id}",
            f"{time.time():.0f}.{next(self._counter)}",
            "default",
            "s",
            "",
            0,
        )
        dial = f"{host}:{port}/{call_id}/c(slin16)"
        self._dial_event("DialBegin", leg, channel, ("DialString", dial))
        self._set_state(leg, 6)
        self._dial_event("DialEnd", leg, channel, ("DialStatus", "ANSWER"))
        channel.peer, leg.peer = leg, channel
        return leg

    async def _connect(self, channel: SimulatedChannel, callee: Callee) -> None:
        """Gosub(callagent-connect): AudioSocket to callagent with the call id as UUID."""
        call_id = channel.call_id
        if call_id is None:  # AudioSocket() refuses a missing or malformed UUID
            self.hang_up(channel, 16)
            return
        holder = self._dial_audiosocket(channel, call_id) if self.dial_mode else channel
        host, port = self.audiosocket
        holder.conversation = asyncio.create_task(
            simulate_call(
                host,
                port,
                list(callee.utterances),
                sample_rate=self.sample_rate,
                call_id=call_id,
                pause_after_agent_s=callee.pause_after_agent_s,
                final_wait_s=callee.final_wait_s,
                max_wait_for_agent_s=callee.max_wait_for_agent_s,
            ),
            name="ami-sim-audiosocket",
        )
        try:
            channel.result = await holder.conversation
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closing or (task is not None and task.cancelling()):
                raise  # the simulator (or whoever runs this call) is stopping it
            if holder is not channel and channel.hangup_cause is None and not channel.redirected_to:
                self.hang_up(channel, 16)  # only the leg went: the dialplan ends in Hangup()
            return  # hung up, redirected or transferred over AMI
        except (OSError, TimeoutError) as exc:
            log.warning("AMI simulator: AudioSocket connection failed: %r", exc)
        if channel.hangup_cause is not None or channel.redirected_to is not None:
            self.hang_up(holder, 16)  # the leg was handed on and its far end is done
        elif channel.result is not None and channel.result.hung_up_by == "caller":
            self._far_end_hangs_up(channel)
        else:
            # callagent closed the socket: the leg goes, the dialplan ends in Hangup().
            self.hang_up(holder, 16)
            self.hang_up(channel, 16)

    async def inbound_call(
        self,
        did: str,
        caller: str,
        utterances: tuple[bytes | str, ...] = (),
        *,
        pause_after_agent_s: float = 0.4,
        final_wait_s: float = 0.5,
        max_wait_for_agent_s: float = 5.0,
        keys_while_answering: str = "",
    ) -> SimulatedChannel:
        """A call from the trunk to ``did``, run through the rendered inbound dialplan; returns
        the channel once it has hung up. ``keys_while_answering`` are pressed as the dialplan
        answers: their ``DTMFEnd`` comes before the ``CallagentInbound`` UserEvent, as a real
        Asterisk 22.10.1 sent a key pressed the moment the call was up."""
        uniqueid = f"{time.time():.0f}.{next(self._counter)}"
        channel = self._new_channel(self._next_name(), uniqueid, INBOUND_CONTEXT, did, caller, 4)
        if did not in self._contexts[INBOUND_CONTEXT]:
            self.hang_up(channel, 1)  # the `i` extension: Hangup(1)
            return channel
        self._set_variable(channel, "CALLAGENT_DID", did)
        channel.context, channel.exten = "callagent-answer", "s"
        self._set_state(channel, 6)  # Answer()
        for digit in keys_while_answering:
            self.press(channel, digit)
        call_id = uuid.uuid4()
        self._set_variable(channel, CALL_ID_VARIABLE, str(call_id))
        filtered = "".join(c for c in caller if c in "0123456789+")  # FILTER(0123456789+,...)
        self._user_event(
            channel,
            INBOUND_EVENT,
            ("CallId", str(call_id)),
            ("Did", did),
            ("Caller", filtered),
        )
        callee = Callee(
            utterances=utterances,
            pause_after_agent_s=pause_after_agent_s,
            final_wait_s=final_wait_s,
            max_wait_for_agent_s=max_wait_for_agent_s,
        )
        channel.context = CONNECT_CONTEXT
        await self._connect(channel, callee)
        await channel.ended.wait()
        return channel

    # --- call control actions -----------------------------------------------------------------

    def _action_hangup(self, session: _Session, action: AmiMessage) -> None:
        channel = self._channel_by_name(action.get("Channel") or "")
        if channel is None:
            self._reply(session, action, "Error", "No such channel")
            return
        self.hang_up(channel, int(action.get("Cause") or "16"))
        self._reply(session, action, "Success", "Channel Hungup")

    def _action_playdtmf(self, session: _Session, action: AmiMessage) -> None:
        channel = self._channel_by_name(action.get("Channel") or "")
        digit = action.get("Digit") or ""
        if channel is None:
            self._reply(session, action, "Error", "Channel not found")
            return
        if len(digit) != 1:
            self._reply(session, action, "Error", "No digit specified")
            return
        channel.dtmf_played.append(digit)
        self._reply(session, action, "Success", "DTMF successfully queued")

    def _target(
        self, session: _Session, action: AmiMessage
    ) -> tuple[SimulatedChannel, tuple[str, str]] | None:
        """The channel and the (context, exten) of a hand-over, or None after an error reply."""
        channel = self._channel_by_name(action.get("Channel") or "")
        context = action.get("Context") or ""
        exten = action.get("Exten") or ""
        if channel is None:
            self._reply(session, action, "Error", "Channel specified does not exist")
            return None
        if exten not in self._contexts.get(context, {}) or exten == "i":
            self._reply(session, action, "Error", "Extension does not exist")
            return None
        return channel, (context, exten)

    def _move(self, channel: SimulatedChannel, target: tuple[str, str]) -> None:
        """``channel`` leaves for ``target``: the target answers, talks briefly, hangs up."""
        channel.redirected_to = target
        channel.context, channel.exten = target
        self._spawn(self._after_transfer(channel), "ami-sim-transfer")

    async def _after_transfer(self, channel: SimulatedChannel) -> None:
        await asyncio.sleep(self._transfer_hold_s)
        self.hang_up(channel, 16)

    def _action_redirect(self, session: _Session, action: AmiMessage) -> None:
        """Redirect moves the named channel itself; its AudioSocket (connection, or leg in
        Dial mode) ends (observed)."""
        found = self._target(session, action)
        if found is None:
            return
        channel, target = found
        leg = self._unbridge(channel)
        if channel.conversation is not None and not channel.conversation.done():
            channel.conversation.cancel()  # AudioSocket() ends; the dialplan goes on elsewhere
        self._reply(session, action, "Success", "Redirect successful")
        self._move(channel, target)
        if leg is not None:
            self.hang_up(leg, 16)

    def _action_blindtransfer(self, session: _Session, action: AmiMessage) -> None:
        """BlindTransfer moves the named channel's bridge *peer* and hangs the named channel up
        (observed): on the caller's channel it is the AudioSocket leg - the agent - that goes."""
        found = self._target(session, action)
        if found is None:
            return
        transferer, target = found
        transferee = self._unbridge(transferer)
        if transferee is None:
            self._reply(session, action, "Error", "Transfer invalid")  # in no bridge
            return
        self._reply(session, action, "Success", "Transfer succeeded")
        self.emit(
            "BlindTransfer",
            "call",
            ("Result", "Success"),
            *self._snapshot(transferer, "Transferer"),
            *self._snapshot(transferee, "Transferee"),
            ("IsExternal", "Yes"),
            ("Context", target[0]),
            ("Extension", target[1]),
        )
        self._move(transferee, target)
        self._hangup_request(transferer, 16, event="SoftHangupRequest")
        self.hang_up(transferer, 16)

    def _action_status(self, session: _Session, action: AmiMessage) -> None:
        wanted = [v.strip() for v in (action.get("Variables") or "").split(",") if v.strip()]
        action_id = [("ActionID", action.action_id)] if action.action_id else []
        self._send(
            session,
            ("Response", "Success"),
            *action_id,
            ("EventList", "start"),
            ("Message", "Channel status will follow"),
        )
        live = [c for c in self.channels.values() if c.hangup_cause is None]
        for channel in live:
            variables = [
                ("Variable", f"{name}={channel.variables[name]}")
                for name in wanted
                if name in channel.variables
            ]
            self._send(
                session,
                ("Event", "Status"),
                ("Privilege", "Call"),
                *action_id,
                *self._snapshot(channel),
                *variables,
            )
        self._send(
            session,
            ("Event", "StatusComplete"),
            *action_id,
            ("EventList", "Complete"),
            ("ListItems", str(len(live))),
            ("Items", str(len(live))),
        )
