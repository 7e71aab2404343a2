"""An Asterisk stand-in for tests: AMI over TCP, plus the calls it connects to AudioSocket.

A fake that copies what the real peer was seen or documented to do (DESIGN.md practice 8).
Asterisk was not available where this simulator was written, so it is built to Asterisk's
documentation and source and to the measurements in DESIGN.md, and it runs on the *rendered*
configuration. What a real Asterisk 22.10.1 was later seen doing differently is in DESIGN.md
"Known traps": notably a busy callee there gives ``Hangup`` with ``Cause: 17`` and then
``OriginateResponse`` with ``Reason: 0``, where this simulator still answers ``Reason: 5``; and
the parts never observed are listed in docs/telephony.md ("What remains unverified").

* **AMI** - the real line-based text protocol (:mod:`fakes.ami_connection`) on a TCP port: the
  banner ``Asterisk Call Manager/11.0.0``; ``Login`` checked against the users, secrets,
  ``permit`` networks and ``read``/``write`` classes of the rendered ``manager.conf`` (an action
  needs one of its privilege classes, events go only to sessions that may read their class);
  ``Logoff``, ``Ping``, ``Originate``, ``Redirect``, ``BlindTransfer``, ``Hangup``, ``PlayDTMF``,
  ``Status``; events ``FullyBooted``, ``Newchannel``, ``Newstate`` (``Ringing``, ``Up``),
  ``Hangup`` (``Cause``, ``Cause-txt``), ``DTMFBegin``/``DTMFEnd``, ``UserEvent``, ``VarSet``
  (class dialplan, which callagent's account must not receive), ``OriginateResponse`` with the
  ActionID and ``Reason`` 4 answered / 5 busy / 3 no answer / 8 congestion / 0 failed;
* **dialplan** - read from the rendered ``extensions.conf``: inbound calls are answered only for
  the DIDs of ``[callagent-inbound]``, announced with the ``CallagentInbound`` UserEvent; the
  outbound context runs AMD (when the dialplan has ``AMD()``) and reports it with
  ``CallagentAmd``; hand-over goes only to extensions that exist; the AudioSocket address and
  rate come from ``CALLAGENT_AUDIOSOCKET`` and the ``c(slin16)`` option;
* **AudioSocket** - an answered call is connected to callagent's AudioSocket server exactly as
  Asterisk would (:func:`callagent.telephony.asterisk.loopback_caller.simulate_call`: UUID
  first, continuous 20 ms frames, socket close as hang-up), with the far end's scripted
  utterances.

What is *not* simulated: SIP, codecs, real AMD signal analysis (the callee script names the
result), dialplan applications beyond those the rendered dialplan uses.
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
from typing import Final

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
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
REASON_CAUSES: Final[Mapping[int, int]] = {5: 17, 3: 19, 8: 34}
STATE_DESC: Final[Mapping[int, str]] = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass(frozen=True)
class Callee:
    """The far end of an Originate, scripted: what happens when the simulator dials it."""

    reason: int = 4
    """OriginateResponse Reason: 4 answers, 5 busy, 3 rings until the timeout, 8 congestion,
    0 the channel cannot even be created."""
    ring_s: float = 0.05
    amd_status: str = "HUMAN"
    amd_cause: str = "HUMAN-800-800"
    amd_s: float = 0.05
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
    result: LoopbackCallResult | None = None
    hangup_cause: int | None = None
    redirected_to: tuple[str, str] | None = None
    dtmf_played: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

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
    def _snapshot(channel: SimulatedChannel) -> tuple[tuple[str, str], ...]:
        return (
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

    def hang_up(self, channel: SimulatedChannel, cause: int) -> None:
        """The channel hangs up with Q.850 ``cause``: its AudioSocket connection closes and a
        Hangup event goes out (a far end hanging up, or an AMI Hangup action)."""
        if channel.hangup_cause is not None:
            return
        channel.hangup_cause = cause
        if channel.conversation is not None and not channel.conversation.done():
            channel.conversation.cancel()  # Asterisk closes the AudioSocket connection
        self.emit(
            "Hangup",
            "call",
            *self._snapshot(channel),
            ("Cause", str(cause)),
            ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
        )
        channel.ended.set()

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

    # --- calls --------------------------------------------------------------------------------

    def _callee(self, number: str) -> Callee:
        if callable(self._callees):
            return self._callees(number)
        return self._callees.get(number, Callee(reason=0))

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
        callee = self._callee(match["number"]) if match else Callee(reason=0)
        timeout_s = int(action.get("Timeout") or "30000") / 1000
        context, exten = action.get("Context") or "", action.get("Exten") or ""
        channel: SimulatedChannel | None = None
        reason = callee.reason
        if reason != 0:
            channel = self._new_channel(
                self._next_name(), uniqueid, context, exten, match["number"] if match else "", 0
            )
            for name, value in variables.items():
                self._set_variable(channel, name, value)
            await asyncio.sleep(min(callee.ring_s, timeout_s))
            if reason in (4, 3):
                self._set_state(channel, 5)
            if reason == 3:
                await asyncio.sleep(max(0.0, timeout_s - callee.ring_s))
            elif reason == 4 and callee.ring_s > timeout_s:
                reason = 3
            if reason == 4:
                self._set_state(channel, 6)
            else:
                self.hang_up(channel, REASON_CAUSES.get(reason, 16))
        response = "Success" if reason == 4 else "Failure"
        headers: list[tuple[str, str]] = []
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        headers += [
            ("Response", response),
            ("Channel", channel.name if channel else requested),
            ("Context", context),
            ("Exten", exten),
            ("Reason", str(reason)),
            ("Uniqueid", channel.uniqueid if channel else "<null>"),
            ("CallerIDNum", "<unknown>"),
            ("CallerIDName", "<unknown>"),
        ]
        if is_async:
            self._emit_to(session, "OriginateResponse", "call", *headers)
        elif reason == 4:
            self._reply(session, action, "Success", "Originate successfully queued")
        else:
            self._reply(session, action, "Error", "Originate failed")
        if reason == 4 and channel is not None:
            await self._outbound_dialplan(channel, callee)

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
            self._user_event(
                channel,
                AMD_EVENT,
                ("CallId", channel.variables.get(CALL_ID_VARIABLE, "")),
                ("Status", callee.amd_status),
                ("Cause", callee.amd_cause),
            )
            if self.hangup_on_machine and callee.amd_status == "MACHINE":
                self.hang_up(channel, 16)
                return
        await self._connect(channel, callee)

    async def _connect(self, channel: SimulatedChannel, callee: Callee) -> None:
        """Gosub(callagent-connect): AudioSocket to callagent with the call id as UUID."""
        call_id = channel.call_id
        if call_id is None:  # AudioSocket() refuses a missing or malformed UUID
            self.hang_up(channel, 16)
            return
        host, port = self.audiosocket
        channel.conversation = asyncio.create_task(
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
            channel.result = await channel.conversation
        except asyncio.CancelledError:
            if channel.hangup_cause is None and channel.redirected_to is None:
                raise  # the simulator itself is closing
            return  # hung up or redirected over AMI: the channel went on elsewhere
        except (OSError, TimeoutError) as exc:
            log.warning("AMI simulator: AudioSocket connection failed: %r", exc)
        if channel.redirected_to is None:
            # Caller or agent hung up; either way the dialplan ends in Hangup().
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
    ) -> SimulatedChannel:
        """A call from the trunk to ``did``, run through the rendered inbound dialplan; returns
        the channel once it has hung up."""
        uniqueid = f"{time.time():.0f}.{next(self._counter)}"
        channel = self._new_channel(self._next_name(), uniqueid, INBOUND_CONTEXT, did, caller, 4)
        if did not in self._contexts[INBOUND_CONTEXT]:
            self.hang_up(channel, 1)  # the `i` extension: Hangup(1)
            return channel
        self._set_variable(channel, "CALLAGENT_DID", did)
        self._set_state(channel, 6)  # Answer()
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

    def _transfer(self, session: _Session, action: AmiMessage, ok: str) -> None:
        channel = self._channel_by_name(action.get("Channel") or "")
        context = action.get("Context") or ""
        exten = action.get("Exten") or ""
        if channel is None:
            self._reply(session, action, "Error", "Channel specified does not exist")
            return
        if exten not in self._contexts.get(context, {}) or exten == "i":
            self._reply(session, action, "Error", "Extension does not exist")
            return
        channel.redirected_to = (context, exten)
        if channel.conversation is not None and not channel.conversation.done():
            channel.conversation.cancel()  # the channel leaves AudioSocket
        self._reply(session, action, "Success", ok)
        self._spawn(self._after_transfer(channel), "ami-sim-transfer")

    async def _after_transfer(self, channel: SimulatedChannel) -> None:
        # The target answers, talks briefly, and the call ends normally.
        await asyncio.sleep(self._transfer_hold_s)
        self.hang_up(channel, 16)

    def _action_redirect(self, session: _Session, action: AmiMessage) -> None:
        self._transfer(session, action, "Redirect successful")

    def _action_blindtransfer(self, session: _Session, action: AmiMessage) -> None:
        self._transfer(session, action, "Transfer succeeded")

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
