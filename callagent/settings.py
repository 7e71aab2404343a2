"""Settings: one module, per-concern sections, validated at start (DESIGN.md practice 12).

Sources, later ones winning: built-in defaults (the embedded mode), a TOML config file,
``CALLAGENT_*`` environment variables, command-line flags. Only the composition root (what
``callagent serve``, ``call``, … run) reads them; every component gets an explicit parameter object.

Each field's environment variable is derived from its section (:func:`environment_names`):
``CALLAGENT_`` + the section's ``env_prefix`` + the field name in capitals, unless the section's
``env_names`` gives the field another name (names chosen before the rule, kept working).
docs/configuration.md lists them all.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import msgspec

_MIDNIGHT = dt.time(0)


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


class NetworkSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where callagent listens. Loopback by default: the embedded mode exposes nothing.

    The HTTP API listens on ``host``, the AudioSocket listener on ``audiosocket_bind``: only
    Asterisk has to reach AudioSocket (docker-compose runs both on the host network), so it
    stays on loopback when the API is opened up. With ``audiosocket_accept = "announced"`` an
    AudioSocket call is taken only if AMI announced its call id - the dialplan's
    ``CallagentInbound`` event, or an Originate of ours - and refused otherwise; without AMI
    (``asterisk.ami_secret`` empty: the embedded mode) nothing can be announced and every call
    is taken. ``any`` takes unannounced calls as ``routing.unknown_number`` says. A peer that
    sends no call id within ``audiosocket_uuid_timeout_s`` is dropped (docs/telephony.md).
    """

    env_prefix: ClassVar[str] = ""

    host: str = "127.0.0.1"
    audiosocket_bind: str = "127.0.0.1"
    audiosocket_port: int = 9092
    http_port: int = 8000
    audiosocket_accept: Literal["announced", "any"] = "announced"
    audiosocket_uuid_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("audiosocket_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"network.{name} must be a port number 0..65535, got {port}")
        _check_value("network.audiosocket_bind", self.audiosocket_bind, "host")
        # Asterisk sends the UUID first, at once (res_audiosocket.c): seconds are plenty.
        if not 0.5 <= self.audiosocket_uuid_timeout_s <= 60.0:
            raise SettingsError(
                "network.audiosocket_uuid_timeout_s must be 0.5..60 s, "
                f"got {self.audiosocket_uuid_timeout_s}"
            )


class ModelSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which model profile of the model manifest to run, and how many threads it gets."""

    env_prefix: ClassVar[str] = ""
    env_names: ClassVar[Mapping[str, str]] = {"profile": "MODELS"}

    profile: str = "default"
    models_dir: str = "models"
    llm_threads: int = 1
    stt_threads: int = 2
    startup_check: bool = True
    """Before loading the LLM, let it generate in a child process: a llama.cpp build that traps
    on this CPU then fails the start with a clear message instead of killing the server on the
    first reply (docs/install.md). Costs about a second at start."""
    workers: bool = True
    """``serve`` runs STT, LLM and TTS each in a supervised worker process: a native crash of
    one ends only the calls it was serving, and the worker restarts (docs/inference.md). False:
    in the server process (``callagent call --simulate`` and tests always are)."""
    failure_message: str = (
        "I'm sorry, I'm having a technical problem and can't continue this call right now. "
        "Please call us again in a few minutes."
    )
    """What a caller hears when an engine fails mid-call, rendered at start (docs/inference.md
    "When a worker dies"); a hand-over to a person follows when the node can make one."""

    def __post_init__(self) -> None:
        if self.llm_threads < 1 or self.stt_threads < 1:
            raise SettingsError("models.llm_threads and models.stt_threads must be at least 1")
        if not self.failure_message.strip() or len(self.failure_message) > 500:
            raise SettingsError("models.failure_message must be 1..500 characters")


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The agent definition file; none means the built-in demo agent."""

    env_prefix: ClassVar[str] = "AGENT_"
    env_names: ClassVar[Mapping[str, str]] = {"file": "AGENT"}

    file: str | None = None


class TurnTakingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Turn-taking knobs, and when the agent ends a call by itself (see docs/pipeline.md).

    After ``silence_prompt_s`` of quiet - the caller says nothing, the agent has nothing left to
    say - the agent asks ``silence_prompt``; after ``silence_end_s`` more it says
    ``silence_goodbye`` and hangs up (a caller whose audio never arrives is quiet too). A call
    ends after ``max_call_s`` with ``max_call_goodbye``. 0 switches either limit off.
    """

    env_prefix: ClassVar[str] = ""

    end_silence_s: float = 0.45
    end_of_turn_words: bool = True
    """Let the words of the turn so far choose the pause that ends it: ``complete_silence_s``
    after a question or finished sentence, ``incomplete_silence_s`` after "and", "um" or a
    number being dictated, ``end_silence_s`` otherwise (docs/pipeline.md "End of turn").
    Off: every pause is ``end_silence_s``."""
    complete_silence_s: float = 0.25
    incomplete_silence_s: float = 1.5
    speculate: bool = False
    """Start the answer - STT and the LLM, nothing played - on the words of a pause before the
    pause has ended the turn; dropped without a sound when the caller goes on
    (docs/pipeline.md "Speculative reply"). Speculative LLM work competes with other calls."""
    vad_aggressiveness: int = 2
    silence_prompt_s: float = 10.0
    silence_end_s: float = 10.0
    max_call_s: float = 1800.0
    silence_prompt: str = "Are you still there?"
    silence_goodbye: str = "I can't hear anyone, so I'll end the call now. Goodbye."
    max_call_goodbye: str = "I'm sorry, we have reached the time limit for this call. Goodbye."

    def __post_init__(self) -> None:
        if not 0.1 <= self.end_silence_s <= 5.0:
            raise SettingsError(
                f"turn_taking.end_silence_s must be 0.1..5.0 s, got {self.end_silence_s}"
            )
        words = self.end_of_turn_words
        if words and not 0.1 <= self.complete_silence_s <= self.end_silence_s:
            raise SettingsError(
                "turn_taking.complete_silence_s must be 0.1 s up to end_silence_s "
                f"({self.end_silence_s}), got {self.complete_silence_s}"
            )
        if words and not self.end_silence_s <= self.incomplete_silence_s <= 5.0:
            raise SettingsError(
                f"turn_taking.incomplete_silence_s must be end_silence_s ({self.end_silence_s}) "
                f"up to 5.0 s, got {self.incomplete_silence_s}"
            )
        if not 0 <= self.vad_aggressiveness <= 3:
            raise SettingsError(
                f"turn_taking.vad_aggressiveness must be 0..3, got {self.vad_aggressiveness}"
            )
        # Shorter than a few seconds would talk over people who are thinking.
        if self.silence_prompt_s != 0 and not 3.0 <= self.silence_prompt_s <= 600.0:
            raise SettingsError(
                "turn_taking.silence_prompt_s must be 0 (off) or 3..600 s, "
                f"got {self.silence_prompt_s}"
            )
        if not 3.0 <= self.silence_end_s <= 600.0:
            raise SettingsError(
                f"turn_taking.silence_end_s must be 3..600 s, got {self.silence_end_s}"
            )
        if self.max_call_s != 0 and not 60.0 <= self.max_call_s <= 86_400.0:
            raise SettingsError(
                f"turn_taking.max_call_s must be 0 (off) or 60..86400 s, got {self.max_call_s}"
            )
        for name in ("silence_prompt", "silence_goodbye", "max_call_goodbye"):
            if not 1 <= len(getattr(self, name).strip()) <= 300:
                raise SettingsError(f"turn_taking.{name} must be 1..300 characters")


# --- telephony (docs/telephony.md) -----------------------------------------------------------
#
# Everything below lands in Asterisk's configuration files or in SIP messages, so each value is
# checked against a small alphabet here, at start, with the setting named in the error (DESIGN.md
# practice 12): a newline, ';', ',', '$' or parenthesis in a setting could otherwise inject
# dialplan or config syntax. The renderer checks again.

_TELEPHONY_PATTERNS: Mapping[str, tuple[str, str]] = {
    "host": (r"[A-Za-z0-9.:\[\]-]{1,253}", "a host name or IP address (optionally :port)"),
    "cidr": (r"[0-9A-Fa-f.:]{2,45}(/[0-9]{1,3})?", "an IP address or network, e.g. 10.0.0.0/8"),
    "name": (r"[A-Za-z0-9._+-]{1,64}", "letters, digits and . _ + - (at most 64)"),
    "secret": (
        r"[A-Za-z0-9!#%&()*+,./:<=>?@\[\]^_{|}~-]{1,128}",
        "printable characters without spaces, quotes, '$', ';' or backslashes",
    ),
    "number": (r"\+?[0-9]{2,20}", "a phone number: digits with an optional leading +"),
    "target": (r"[a-z][a-z0-9_]{1,31}", "a name of 2-32 lower-case letters, digits or _"),
}
_CODECS = frozenset({"ulaw", "alaw", "g722", "opus", "gsm"})


def _check_value(where: str, value: str, kind: str) -> None:
    pattern, meaning = _TELEPHONY_PATTERNS[kind]
    if re.fullmatch(pattern, value) is None:
        # A secret is never echoed: the error ends up in logs.
        shown = "a value that is not" if kind == "secret" else f"{value!r}, not"
        raise SettingsError(f"{where}: got {shown} {meaning}")


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


class AsteriskSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Asterisk in front of callagent: trunk, AMI account, dialplan (docs/telephony.md).

    Lists are comma-separated strings so they can come from one environment variable.
    """

    env_prefix: ClassVar[str] = ""
    # Asterisk's own SIP listener is named apart from the direct-SIP section's CALLAGENT_SIP_*.
    env_names: ClassVar[Mapping[str, str]] = {
        "audiosocket_host": "ASTERISK_AUDIOSOCKET_HOST",
        "sip_bind": "ASTERISK_SIP_BIND",
        "sip_port": "ASTERISK_SIP_PORT",
        "amd_enabled": "AMD",
    }

    audiosocket_host: str = "127.0.0.1"
    """Address at which Asterisk reaches callagent's AudioSocket port (network.audiosocket_port)."""
    audiosocket_format: Literal["slin16", "slin"] = "slin16"
    """slin16: Dial(AudioSocket/...c(slin16)), 16 kHz (kind 0x12); slin: AudioSocket(), 8 kHz."""
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_bind: str = "127.0.0.1"
    """Address Asterisk's AMI listens on."""
    ami_permit: str = "127.0.0.1/32"
    """The callagent host(s) allowed to log in to AMI; everything else is denied."""
    ami_username: str = "callagent"
    ami_secret: str = ""
    sip_bind: str = "0.0.0.0"
    sip_port: int = 5060
    external_address: str = ""
    """Public address Asterisk announces in SIP/SDP when behind NAT (empty: none)."""
    local_net: str = ""
    """Comma-separated local networks (NAT: addresses not rewritten to external_address)."""
    rtp_port_start: int = 10000
    rtp_port_end: int = 10200
    codecs: str = "g722,alaw,ulaw"
    trunk_host: str = ""
    trunk_transport: Literal["udp", "tcp", "tls"] = "udp"
    trunk_username: str = ""
    trunk_password: str = ""
    trunk_register: bool = True
    trunk_caller_id: str = ""
    """Caller number presented on outbound calls (empty: the trunk's default). It always goes
    out as P-Asserted-Identity; whether the From header carries it too is ``trunk_from_user``."""
    trunk_from_user: Literal["auto", "username", "caller_id"] = "auto"
    """The user part of the From header of outbound calls: ``username`` the trunk username (what
    providers that authenticate by account usually demand), ``caller_id`` the call's caller id
    (what IP-authenticated trunks usually read the number from), ``auto`` the username when
    there is one, else the caller id."""
    trunk_qualify_interval_s: int = 0
    """Seconds between SIP OPTIONS pings to the trunk; 0 (default) sends none. While a pinged
    trunk does not answer, Asterisk refuses every call to it at once - and many providers never
    answer OPTIONS (docs/telephony.md)."""
    dids: str = ""
    """Comma-separated numbers the trunk delivers to us; each is answered by callagent."""
    transfer_targets: str = ""
    """Comma-separated name=number pairs: the only places a call may be handed over to."""
    amd_enabled: bool = True
    amd_on_machine: Literal["connect", "hangup"] = "connect"
    originate_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("audiosocket_host", "ami_host", "ami_bind", "sip_bind"):
            _check_value(f"asterisk.{name}", getattr(self, name), "host")
        for name in ("ami_port", "sip_port", "rtp_port_start", "rtp_port_end"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise SettingsError(f"asterisk.{name} must be a port number 1..65535, got {port}")
        if self.rtp_port_start >= self.rtp_port_end:
            raise SettingsError("asterisk.rtp_port_start must be below asterisk.rtp_port_end")
        for network in (*_split_list(self.ami_permit), *_split_list(self.local_net)):
            _check_value("asterisk.ami_permit / asterisk.local_net", network, "cidr")
        if not _split_list(self.ami_permit):
            raise SettingsError("asterisk.ami_permit must name the callagent host")
        _check_value("asterisk.ami_username", self.ami_username, "name")
        if self.ami_secret:
            _check_value("asterisk.ami_secret", self.ami_secret, "secret")
        for name, kind in (
            ("external_address", "host"),
            ("trunk_host", "host"),
            ("trunk_username", "name"),
            ("trunk_password", "secret"),
            ("trunk_caller_id", "number"),
        ):
            if getattr(self, name):
                _check_value(f"asterisk.{name}", getattr(self, name), kind)
        for did in self.did_list():
            _check_value("asterisk.dids", did, "number")
        self.transfer_map()  # validates
        unknown = set(_split_list(self.codecs)) - _CODECS
        if unknown or not _split_list(self.codecs):
            raise SettingsError(
                f"asterisk.codecs must list some of {sorted(_CODECS)}, got {self.codecs!r}"
            )
        if not 5.0 <= self.originate_timeout_s <= 120.0:
            raise SettingsError("asterisk.originate_timeout_s must be 5..120 s")
        # Asterisk's own range for qualify_frequency (res_pjsip location.c).
        if not 0 <= self.trunk_qualify_interval_s <= 86400:
            raise SettingsError(
                "asterisk.trunk_qualify_interval_s must be 0 (off) .. 86400 s, "
                f"got {self.trunk_qualify_interval_s}"
            )

    def did_list(self) -> tuple[str, ...]:
        """The DIDs, in the order given."""
        return _split_list(self.dids)

    def transfer_map(self) -> dict[str, str]:
        """The transfer allow-list: target name → number."""
        targets: dict[str, str] = {}
        for item in _split_list(self.transfer_targets):
            name, sep, number = (part.strip() for part in item.partition("="))
            if not sep:
                raise SettingsError(
                    f"asterisk.transfer_targets entries are name=number, got {item!r}"
                )
            _check_value("asterisk.transfer_targets name", name, "target")
            _check_value("asterisk.transfer_targets number", number, "number")
            if name in targets:
                raise SettingsError(f"asterisk.transfer_targets names {name!r} twice")
            targets[name] = number
        return targets

    def audiosocket_sample_rate(self) -> int:
        """The rate of every AudioSocket call, as the rendered dialplan fixes it: 16 kHz with
        ``c(slin16)`` (kind 0x12), 8 kHz with ``AudioSocket()`` (DESIGN.md "Contracts")."""
        return 16_000 if self.audiosocket_format == "slin16" else 8_000


class SipSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Direct SIP without Asterisk: callagent's own pjsua2 endpoint (docs/telephony.md)."""

    env_prefix: ClassVar[str] = "SIP_"
    env_names: ClassVar[Mapping[str, str]] = {"enabled": "SIP"}

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5060
    transport: Literal["udp", "tcp"] = "udp"
    public_address: str = ""
    rtp_port: int = 4000
    rtp_port_range: int = 200
    sample_rate: Literal[8000, 16000] = 16000
    """Rate of the audio handed to the pipeline; pjmedia resamples the codec's rate to it."""
    registrar: str = ""
    """Trunk to register with (host[:port]); empty: only accept calls sent to host:port."""
    username: str = ""
    password: str = ""
    max_calls: int = 4
    allowed_networks: str = "127.0.0.0/8,::1/128"
    """Comma-separated networks (CIDR) whose calls are answered, besides the registrar's own
    addresses; a call from anywhere else gets 403 Forbidden. Default: this machine only."""

    def __post_init__(self) -> None:
        _check_value("sip.host", self.host, "host")
        self.allowed_network_list()  # validates
        if not _split_list(self.allowed_networks) and not self.registrar:
            raise SettingsError(
                "sip.allowed_networks is empty and there is no sip.registrar: "
                "no call could be answered"
            )
        for name in ("public_address", "registrar"):
            if getattr(self, name):
                _check_value(f"sip.{name}", getattr(self, name), "host")
        if self.username:
            _check_value("sip.username", self.username, "name")
        if self.password:
            _check_value("sip.password", self.password, "secret")
        if self.registrar and not self.username:
            raise SettingsError("sip.registrar needs sip.username (and sip.password)")
        if not 0 <= self.port <= 65535 or not 0 <= self.rtp_port <= 65535:
            raise SettingsError("sip.port and sip.rtp_port must be port numbers 0..65535")
        if not 1 <= self.max_calls <= 64:
            raise SettingsError(f"sip.max_calls must be 1..64, got {self.max_calls}")

    def allowed_network_list(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of ``allowed_networks``, parsed."""
        networks = []
        for item in _split_list(self.allowed_networks):
            _check_value("sip.allowed_networks", item, "cidr")
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise SettingsError(f"sip.allowed_networks: {error}") from None
        return tuple(networks)


class DatabaseSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where clients, agents, customers and calls are stored (docs/api.md): a SQLite file by
    default (the embedded mode), ``postgresql+asyncpg://…`` in production."""

    env_prefix: ClassVar[str] = "DATABASE_"

    url: str = "sqlite+aiosqlite:///var/callagent.db"

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError(
                "database.url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )


class RecordingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Call recordings (docs/telephony.md): both sides of each call as a 2-channel wav in
    ``folder``, named by the call id and referenced from the call session; files older than
    ``retention_days`` are deleted at start and daily (0 keeps them forever)."""

    env_prefix: ClassVar[str] = "RECORDING_"
    env_names: ClassVar[Mapping[str, str]] = {"enabled": "RECORDINGS", "folder": "RECORDINGS_DIR"}

    enabled: bool = True
    folder: str = "var/recordings"
    retention_days: float = 30.0

    def __post_init__(self) -> None:
        if not self.folder.strip():
            raise SettingsError("recording.folder must name a folder")
        if not 0 <= self.retention_days <= 36_500:
            raise SettingsError(
                f"recording.retention_days must be 0..36500 (0: keep), got {self.retention_days}"
            )


class RoutingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a call to a number no client owns gets (docs/telephony.md "Routing").

    ``file_agent``: the agent of ``agent.file`` (or the built-in demo agent) answers and nothing
    is stored - a single-business install works without creating a client. ``message``: the
    caller hears ``unknown_number_message`` and the call ends - for multi-tenant installs.

    And how many calls this node answers at once (docs/telephony.md "Capacity"): beyond
    ``max_active_calls`` - AudioSocket and direct SIP together - a caller hears
    ``busy_message`` and is hung up, and start-call is refused (503). The default 2 is sized
    for the ``default`` profile on 2 cores, where 3 calls at once pushed voice-to-voice p95 to
    5-10 s.
    """

    env_prefix: ClassVar[str] = ""

    unknown_number: Literal["file_agent", "message"] = "file_agent"
    unknown_number_message: str = (
        "Sorry, this number is not in service at the moment. Please check the number. Goodbye."
    )
    max_active_calls: int = 2
    busy_message: str = (
        "Sorry, all our agents are busy right now. We will call you back as soon as we can, "
        "or please try again in a few minutes. Goodbye."
    )

    def __post_init__(self) -> None:
        if not self.unknown_number_message.strip() or len(self.unknown_number_message) > 500:
            raise SettingsError("routing.unknown_number_message must be 1..500 characters")
        if not 1 <= self.max_active_calls <= 256:
            raise SettingsError(
                f"routing.max_active_calls must be 1..256, got {self.max_active_calls}"
            )
        if not self.busy_message.strip() or len(self.busy_message) > 500:
            raise SettingsError("routing.busy_message must be 1..500 characters")


class RecoverySettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """After a crash (docs/telephony.md, "After a crash"): every ``heartbeat_interval_s`` a node
    marks the calls it runs as alive; a live call with no sign of life for ``stale_after_s`` was
    lost with its node and is settled as interrupted by the sweep that runs at start-up and then
    every ``sweep_interval_s``. The nodes' clocks must agree to well within ``stale_after_s``."""

    env_prefix: ClassVar[str] = "RECOVERY_"

    heartbeat_interval_s: float = 15.0
    stale_after_s: float = 90.0
    sweep_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.heartbeat_interval_s <= 600:
            raise SettingsError(
                f"recovery.heartbeat_interval_s must be 0.1..600 s, got {self.heartbeat_interval_s}"
            )
        # Two heartbeats may be late or lost (a slow database) before a call counts as lost.
        if self.stale_after_s < 3 * self.heartbeat_interval_s:
            raise SettingsError(
                "recovery.stale_after_s must be at least 3 x recovery.heartbeat_interval_s, "
                f"got {self.stale_after_s} and {self.heartbeat_interval_s}"
            )
        if not 0.1 <= self.sweep_interval_s <= 86_400:
            raise SettingsError(
                f"recovery.sweep_interval_s must be 0.1..86400 s, got {self.sweep_interval_s}"
            )


class AnalysisSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Post-call analysis (docs/analysis.md): after an answered call the local model (the
    profile's LLM, a second instance) reads the transcript and fills the records.

    ``enabled`` runs the worker on this node. An answered call's job is queued when this node
    runs the worker or ``other_nodes`` says another node of the installation does (the job
    waits for it); with neither, no job is queued and the call is complete at hang-up (its
    ``call.completed`` webhook goes then, docs/webhooks.md). A node looks for due jobs every
    ``poll_interval_s``; a job it takes is its own for ``lease_s`` (renewed while it runs;
    after a crash another node takes it once the lease ran out). While this node has a live
    call it takes only jobs that waited ``max_defer_s``. ``context_tokens`` and
    ``max_tokens`` size the model's context and answer; ``nice`` is the CPU priority of its
    thread (19: the lowest).
    """

    env_prefix: ClassVar[str] = "ANALYSIS_"
    env_names: ClassVar[Mapping[str, str]] = {"enabled": "ANALYSIS"}

    enabled: bool = True
    other_nodes: bool = False
    poll_interval_s: float = 5.0
    lease_s: float = 600.0
    max_defer_s: float = 900.0
    context_tokens: int = 4096
    max_tokens: int = 1200
    nice: int = 19

    def __post_init__(self) -> None:
        if not 0.1 <= self.poll_interval_s <= 3600:
            raise SettingsError(
                f"analysis.poll_interval_s must be 0.1..3600 s, got {self.poll_interval_s}"
            )
        # A run of the default model takes 10-60 s on 2 cores (docs/analysis.md).
        if not 60 <= self.lease_s <= 86_400:
            raise SettingsError(f"analysis.lease_s must be 60..86400 s, got {self.lease_s}")
        if not 0 <= self.max_defer_s <= 7 * 86_400:
            raise SettingsError(f"analysis.max_defer_s must be 0..604800 s, got {self.max_defer_s}")
        if not 2048 <= self.context_tokens <= 32_768:
            raise SettingsError(
                f"analysis.context_tokens must be 2048..32768, got {self.context_tokens}"
            )
        if not 256 <= self.max_tokens <= self.context_tokens // 2:
            raise SettingsError(
                f"analysis.max_tokens must be 256..context_tokens/2, got {self.max_tokens}"
            )
        if not 0 <= self.nice <= 19:
            raise SettingsError(f"analysis.nice must be 0..19, got {self.nice}")

    def analysed(self) -> bool:
        """Whether some node of the installation analyses calls (so their jobs are queued)."""
        return self.enabled or self.other_nodes


class SchedulerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The scheduler that dials due rows - callbacks, retries, follow-ups - and the rules checked
    when a row is dialled (docs/scheduler.md).

    Every ``poll_interval_s`` a node leases up to ``batch`` due rows for ``lease_s``; a row
    whose node died is taken again when its lease runs out. ``node_name`` names the node in
    leases (empty: host name and process id). A call is placed only inside ``legal_start`` -
    ``legal_end`` on ``legal_days`` in the *customer's* local time and inside the agent's
    working hours; never to a number on the suppression list, of a class in
    ``blocked_number_types`` (phonenumbers' types, lower case, plus ``satellite`` and
    ``international_network``) or outside ``allowed_countries`` (ISO codes; empty: any); at
    most ``max_attempts_24h`` calls to one number a day; at most ``max_calls_per_agent`` /
    ``_client`` live calls at once (a row that would pass a cap waits ``wait_s``). How many
    calls this node carries is ``routing.max_active_calls`` alone: the scheduler takes a slot
    from admission control before each dial, or leaves the row due. An outgoing call that
    reached nobody is retried ``retry_after_s`` later, then with doubling delays, up to
    ``retry_max_attempts`` calls in all."""

    env_prefix: ClassVar[str] = "SCHEDULER_"
    env_names: ClassVar[Mapping[str, str]] = {"enabled": "SCHEDULER"}

    enabled: bool = True
    node_name: str = ""
    poll_interval_s: float = 0.25
    lease_s: float = 30.0
    batch: int = 20
    wait_s: float = 60.0
    legal_start: str = "08:00"
    legal_end: str = "21:00"
    legal_days: str = "mon-sat"
    blocked_number_types: str = (
        "premium_rate,shared_cost,satellite,international_network,uan,pager,voicemail"
    )
    allowed_countries: str = ""
    max_attempts_24h: int = 3
    max_calls_per_agent: int = 2
    max_calls_per_client: int = 2
    retry_after_s: float = 1800.0
    retry_max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.node_name:
            _check_value("scheduler.node_name", self.node_name, "name")
        if not 0.05 <= self.poll_interval_s <= 3600:
            raise SettingsError(
                f"scheduler.poll_interval_s must be 0.05..3600 s, got {self.poll_interval_s}"
            )
        # A lease must outlast a dial's two short transactions and the Originate hand-over.
        if not 5 <= self.lease_s <= 3600:
            raise SettingsError(f"scheduler.lease_s must be 5..3600 s, got {self.lease_s}")
        if not 1 <= self.batch <= 1000:
            raise SettingsError(f"scheduler.batch must be 1..1000, got {self.batch}")
        if not 1 <= self.wait_s <= 86_400:
            raise SettingsError(f"scheduler.wait_s must be 1..86400 s, got {self.wait_s}")
        start, end = (self.legal_time(name) for name in ("legal_start", "legal_end"))
        if end != _MIDNIGHT and end <= start:
            raise SettingsError("scheduler.legal_end must be after scheduler.legal_start")
        self.legal_day_set()  # validates
        self.blocked_type_set()  # validates
        for country in self.allowed_country_set():
            if re.fullmatch(r"[A-Z]{2}", country) is None:
                raise SettingsError(
                    f"scheduler.allowed_countries: {country!r} is not a two-letter ISO code"
                )
        for name in ("max_attempts_24h", "max_calls_per_agent", "max_calls_per_client"):
            if not 1 <= getattr(self, name) <= 1000:
                raise SettingsError(f"scheduler.{name} must be 1..1000, got {getattr(self, name)}")
        if not 60 <= self.retry_after_s <= 7 * 86_400:
            raise SettingsError(
                f"scheduler.retry_after_s must be 60..604800 s, got {self.retry_after_s}"
            )
        if not 1 <= self.retry_max_attempts <= 10:
            raise SettingsError(
                f"scheduler.retry_max_attempts must be 1..10, got {self.retry_max_attempts}"
            )

    def legal_time(self, name: str) -> dt.time:
        """``legal_start`` or ``legal_end`` as a time (``24:00`` / ``00:00`` end: midnight)."""
        value = getattr(self, name)
        if value == "24:00":
            return _MIDNIGHT
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            raise SettingsError(f"scheduler.{name} must be HH:MM, got {value!r}") from None

    def legal_day_set(self) -> frozenset[int]:
        """``legal_days`` as weekday numbers (Monday = 0)."""
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        found: set[int] = set()
        for part in _split_list(self.legal_days.lower()):
            first, _, last = part.partition("-")
            if first not in days or (last and last not in days):
                raise SettingsError(
                    f"scheduler.legal_days: {part!r} is not a weekday (mon..sun) or a range"
                )
            found.update(range(days.index(first), days.index(last or first) + 1))
        if not found:
            raise SettingsError("scheduler.legal_days must name at least one day")
        return frozenset(found)

    def blocked_type_set(self) -> frozenset[str]:
        """``blocked_number_types`` as a set, each checked against the known types."""
        known = {
            "fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate",
            "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "unknown",
            "satellite", "international_network", "invalid",
        }  # fmt: skip
        types = frozenset(_split_list(self.blocked_number_types.lower()))
        if types - known:
            raise SettingsError(
                f"scheduler.blocked_number_types: unknown {sorted(types - known)}; "
                f"known: {sorted(known)}"
            )
        return types

    def allowed_country_set(self) -> frozenset[str]:
        """``allowed_countries`` as upper-case ISO codes (empty: every country)."""
        return frozenset(c.upper() for c in _split_list(self.allowed_countries))


class WebhookSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Signed webhooks to the clients' CRMs (docs/webhooks.md).

    ``enabled`` runs the delivery worker on this node; events are written with the change they
    report either way and wait for a node that sends them. Idle, the worker looks for a due
    delivery every ``poll_interval_s``; a delivery it takes is its own for ``lease_s`` (after a
    crash another node sends it once the lease ran out), so the lease must outlast an attempt
    (``timeout_s``, the whole POST). A delivery is tried ``max_attempts`` times, pausing
    ``backoff_base_s`` x 2^(n-1) after attempt n, at most ``backoff_max_s``, half of it random;
    then it is ``failed``. What was delivered is deleted ``retention_days`` later (0: kept);
    nothing undelivered is ever deleted.
    """

    env_prefix: ClassVar[str] = "WEBHOOKS_"
    env_names: ClassVar[Mapping[str, str]] = {"enabled": "WEBHOOKS"}

    enabled: bool = True
    poll_interval_s: float = 1.0
    lease_s: float = 60.0
    max_attempts: int = 12
    backoff_base_s: float = 15.0
    backoff_max_s: float = 3600.0
    timeout_s: float = 10.0
    retention_days: float = 30.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.poll_interval_s <= 3600:
            raise SettingsError(
                f"webhooks.poll_interval_s must be 0.05..3600 s, got {self.poll_interval_s}"
            )
        # A CRM is asked to answer within seconds (docs/webhooks.md); minutes hold a loop.
        if not 1 <= self.timeout_s <= 120:
            raise SettingsError(f"webhooks.timeout_s must be 1..120 s, got {self.timeout_s}")
        # The lease covers the claim, the POST and the report: twice the POST leaves room for
        # a slow database; a shorter one would let another node send it meanwhile.
        if not 2 * self.timeout_s <= self.lease_s <= 3600:
            raise SettingsError(
                "webhooks.lease_s must be 2 x webhooks.timeout_s..3600 s, "
                f"got {self.lease_s} with timeout_s {self.timeout_s}"
            )
        if not 1 <= self.max_attempts <= 100:
            raise SettingsError(f"webhooks.max_attempts must be 1..100, got {self.max_attempts}")
        if not 1 <= self.backoff_base_s <= 86_400:
            raise SettingsError(
                f"webhooks.backoff_base_s must be 1..86400 s, got {self.backoff_base_s}"
            )
        if not self.backoff_base_s <= self.backoff_max_s <= 7 * 86_400:
            raise SettingsError(
                "webhooks.backoff_max_s must be webhooks.backoff_base_s..604800 s, "
                f"got {self.backoff_max_s}"
            )
        if self.retention_days != 0 and not 1 <= self.retention_days <= 3650:
            raise SettingsError(
                "webhooks.retention_days must be 0 (keep) or 1..3650 days, "
                f"got {self.retention_days}"
            )


class LlmSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the dialog's LLM runs (docs/models.md, "LLM server").

    ``server = "in-process"`` (the default): llama-cpp-python inside callagent; concurrent calls
    take turns on one model. ``"local"``: callagent starts llama.cpp's ``llama-server`` as a
    supervised child (``make llama-server`` builds it) with ``parallel`` slots, so concurrent
    calls generate in one batch; it is restarted when it dies. ``endpoint``: an
    OpenAI-compatible server elsewhere (llama-server on a bigger box, vLLM), shared by several
    callagent nodes, with ``api_key`` and ``model`` if it needs them; checked at start.
    ``timeout_s``: a reply stream silent that long counts as a dead server.
    """

    env_prefix: ClassVar[str] = "LLM_"

    server: Literal["in-process", "local"] = "in-process"
    endpoint: str = ""
    api_key: str = ""
    model: str = ""
    parallel: int = 4
    server_binary: str = ""
    port: int = 0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.endpoint:
            if self.server == "local":
                raise SettingsError(
                    "llm.endpoint and llm.server = 'local' exclude each other: "
                    "a node runs its own llama-server or uses a remote one"
                )
            url = r"https?://[A-Za-z0-9.\[\]:-]+(:[0-9]{1,5})?(/[^\s?#]*)?"
            if re.fullmatch(url, self.endpoint) is None:
                raise SettingsError(
                    "llm.endpoint must be an http:// or https:// URL of an OpenAI-compatible "
                    f"server without /v1 (e.g. http://10.0.0.5:8080), got {self.endpoint!r}"
                )
        if not 1 <= self.parallel <= 64:
            raise SettingsError(f"llm.parallel must be 1..64 slots, got {self.parallel}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"llm.port must be a port number 0..65535, got {self.port}")
        if not 1.0 <= self.timeout_s <= 600.0:
            raise SettingsError(f"llm.timeout_s must be 1..600 s, got {self.timeout_s}")

    @property
    def remote(self) -> bool:
        """Whether the LLM is a server elsewhere."""
        return bool(self.endpoint)


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """All settings, one section per concern."""

    network: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    agent: AgentSettings = msgspec.field(default_factory=AgentSettings)
    turn_taking: TurnTakingSettings = msgspec.field(default_factory=TurnTakingSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    asterisk: AsteriskSettings = msgspec.field(default_factory=AsteriskSettings)
    sip: SipSettings = msgspec.field(default_factory=SipSettings)
    recording: RecordingSettings = msgspec.field(default_factory=RecordingSettings)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    recovery: RecoverySettings = msgspec.field(default_factory=RecoverySettings)
    analysis: AnalysisSettings = msgspec.field(default_factory=AnalysisSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    scheduler: SchedulerSettings = msgspec.field(default_factory=SchedulerSettings)


ENV_PREFIX = "CALLAGENT_"


def environment_names(root: type[msgspec.Struct] = Settings) -> dict[str, tuple[str, str]]:
    """Every setting's environment variable → (section, field), derived from ``root``'s sections.

    The name is ``CALLAGENT_`` + the section's ``env_prefix`` + the field in capitals, or
    ``CALLAGENT_`` + the section's ``env_names[field]`` where one is given. Two settings never
    share a name: that would be a mistake in a section's names, refused here.
    """
    names: dict[str, tuple[str, str]] = {}
    for section in msgspec.structs.fields(root):
        struct = section.type
        prefix: str = getattr(struct, "env_prefix", "")
        renamed: Mapping[str, str] = getattr(struct, "env_names", {})
        for field in msgspec.structs.fields(struct):
            suffix = renamed.get(field.name, prefix + field.name.upper())
            variable = ENV_PREFIX + suffix
            if variable in names:
                other = ".".join(names[variable])
                raise RuntimeError(
                    f"{variable} would name both {other} and {section.name}.{field.name}"
                )
            names[variable] = (section.name, field.name)
    return names


# Environment variable → (section, field).
ENVIRONMENT: Mapping[str, tuple[str, str]] = environment_names()


REMOVED: Final[Mapping[tuple[str, str], tuple[str, str]]] = {
    ("scheduler", "max_calls_per_node"): (
        "CALLAGENT_SCHEDULER_MAX_CALLS_PER_NODE",
        "a node's calls, the scheduler's included, are capped by routing.max_active_calls "
        "(CALLAGENT_MAX_ACTIVE_CALLS); see docs/scheduler.md",
    ),
}
"""Settings that are gone: naming one is an error that says what replaced it."""


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Settings:
    """Merge defaults, config file, environment and overrides into validated settings."""
    raw: dict[str, dict[str, Any]] = {}
    if config_file is not None:
        try:
            loaded = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as error:
            raise SettingsError(f"cannot read config file {config_file}: {error}") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {config_file} is not valid TOML: {error}") from error
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise SettingsError(f"config file {config_file}: [{section}] must be a table")
            raw[section] = dict(values)
    for variable, (section, name) in ENVIRONMENT.items():
        value = (environ if environ is not None else os.environ).get(variable)
        if value is not None and value != "":
            raw.setdefault(section, {})[name] = value
    source = environ if environ is not None else os.environ
    for (section, name), (variable, instead) in REMOVED.items():
        # Silently ignoring a cap someone set would dial more (or fewer) calls than they asked.
        if name in raw.get(section, {}) or source.get(variable):
            raise SettingsError(f"{section}.{name} ({variable}) was removed: {instead}")
    for (section, name), value in (overrides or {}).items():
        if value is not None:
            # Paths are kept as text: that is how they arrive from files and the environment.
            raw.setdefault(section, {})[name] = str(value) if isinstance(value, Path) else value
    try:
        # strict=False lets "9092" from the environment become an int; types are still checked.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid setting: {error}") from error
    except SettingsError:
        raise
