"""Asterisk's configuration, rendered from callagent's settings (docs/telephony.md).

``callagent asterisk-config --out DIR`` writes the files of :data:`TEMPLATE_FILES` (``pjsip.conf``,
``extensions.conf``, ``manager.conf`` ...) for the Asterisk in front of callagent; docker-compose
mounts that folder as ``/etc/asterisk``. An operator with a SIP trunk fills in settings
(docs/telephony.md) and never edits a ``.conf`` file.

The templates in ``templates/`` hold ``{{name}}`` placeholders; everything dynamic (DIDs, transfer
targets, NAT lines) is built here from validated settings. Every value is checked once more
against a small alphabet just before it is written (:func:`_checked`), because a newline, ``;``,
``,``, ``$`` or parenthesis in a value would inject config or dialplan syntax (no injection
through settings, docs/telephony.md) - settings already refuse them, this is the last line of
defence.

The names of contexts, the channel variable and the UserEvents are constants here, shared with the
AMI client (:mod:`.ami`), so the dialplan and the code that reads its events cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Final

from callagent.settings import AsteriskSettings

TEMPLATE_DIR: Final = Path(__file__).with_name("templates")
CORE_FILES: Final = (
    "stasis.conf",
    "cdr.conf",
    "cel.conf",
    "features.conf",
    "acl.conf",
    "udptl.conf",
    "indications.conf",
    "ccss.conf",
    "pjproject.conf",
    "musiconhold.conf",
)
"""Files Asterisk's core and the modules callagent loads read at every start, with nothing of
ours in them: without them each start logs an ERROR or WARNING per file (seen on Asterisk
22.10.1), which buries the lines that matter. Each holds the least that loads cleanly."""
TEMPLATE_FILES: Final = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "pjsip.conf",
    "extensions.conf",
    "manager.conf",
    "rtp.conf",
    "amd.conf",
    *CORE_FILES,
)
SECRET_FILES: Final = frozenset({"pjsip.conf", "manager.conf"})
"""Files holding a password: written readable by owner and group only."""

INBOUND_CONTEXT: Final = "callagent-inbound"
ANSWER_CONTEXT: Final = "callagent-answer"
OUTBOUND_CONTEXT: Final = "callagent-outbound"
CONNECT_CONTEXT: Final = "callagent-connect"
TRANSFER_CONTEXT: Final = "callagent-transfer"
TRUNK_ENDPOINT: Final = "trunk"
CALL_ID_VARIABLE: Final = "CALLAGENT_UUID"
"""Channel variable holding the call id, which is also the AudioSocket UUID."""
INBOUND_EVENT: Final = "CallagentInbound"
"""UserEvent announcing an inbound call: ``CallId``, ``Did``, ``Caller`` headers."""
AMD_EVENT: Final = "CallagentAmd"
"""UserEvent carrying AMD()'s result on an outbound call: ``CallId``, ``Status``, ``Cause``."""

MIN_AMI_SECRET: Final = 16

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_PLACEHOLDER_VALUE = re.compile(r"change[-_]?me", re.IGNORECASE)
_ALPHABETS: Final[Mapping[str, re.Pattern[str]]] = {
    # Host names, numbers, names, ports: nothing that means anything to a .conf parser or the
    # dialplan (no ; , ( ) $ { } = or whitespace).
    "token": re.compile(r"[A-Za-z0-9.+_:\[\]/-]*"),
    # A comma-separated list on a line of its own (`allow = g722,alaw,ulaw`).
    "list": re.compile(r"[A-Za-z0-9,]*"),
    # Passwords land after `secret =` / `password =` only: wider, still no ; " ' $ \ or blanks.
    "secret": re.compile(r"[A-Za-z0-9!#%&()*+,./:<=>?@\[\]^_{|}~-]*"),
}


class AsteriskConfigError(ValueError):
    """The settings cannot produce a working Asterisk configuration; the message says why."""


@dataclass(frozen=True)
class AmdParameters:
    """The settings of Asterisk's ``AMD()`` (``amd.conf``), in milliseconds unless noted; the
    defaults are those for ``amd_on_machine = connect`` (:func:`amd_parameters`).

    Chosen, not measured against people (docs/telephony.md, "Outbound calls and AMD", explains
    each). The callee hears silence until AMD decides (app_amd.c reads and sends nothing back),
    so every limit is also dead air on the line. Asterisk's defaults
    (2500 / 1500 / 800 / 5000 / 100 / 50 / 2 words) classify a person who answers "Hello, who is
    this?" as a MACHINE: AMD counts every voiced burst after a 50 ms pause as a word, so three or
    four short words already exceed two. We allow 5 "words" and a 2-second greeting - a person
    rarely says more before pausing for an answer, while a voicemail greeting talks on for
    several seconds and is still caught by the greeting length. A person who says "Hello?" is
    HUMAN after ``after_greeting_silence``: Asterisk's 800 ms, as a shorter wait would decide
    inside a pause of "Hello, [pause] Mark speaking" and start the agent over the callee. Many
    people wait for an unknown caller to speak first; AMD calls that silence a MACHINE after
    ``initial_silence``. When the agent talks to machines anyway (``connect``), the verdict
    costs nothing and only the wait matters: 2 s of initial silence and at most 4 s of
    listening.
    """

    initial_silence: int = 2000
    greeting: int = 2000
    after_greeting_silence: int = 800
    total_analysis_time: int = 4000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 5
    maximum_word_length: int = 5000
    silence_threshold: int = 256
    """Energy (not ms) below which a 20 ms frame counts as silence; Asterisk's default."""


def amd_parameters(on_machine: str) -> AmdParameters:
    """AMD's settings for ``asterisk.amd_on_machine``: with ``hangup`` a MACHINE verdict ends the
    call, so a person who waits in silence is given 3 s before being taken for a machine, and
    AMD listens up to 5 s - longer dead air for fewer people hung up on."""
    if on_machine == "hangup":
        return replace(AmdParameters(), initial_silence=3000, total_analysis_time=5000)
    return AmdParameters()


def _checked(name: str, value: str, alphabet: str = "token") -> str:
    if "\n" in value or "\r" in value or not _ALPHABETS[alphabet].fullmatch(value):
        # Secrets are not echoed: this error may be printed or logged.
        shown = "" if alphabet == "secret" else f" {value!r}"
        raise AsteriskConfigError(
            f"{name}{shown} contains characters not allowed in Asterisk's config"
        )
    return value


def _fill(template_name: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{name}}``; an unknown or unused placeholder is a bug in this module."""
    text = (TEMPLATE_DIR / template_name).read_text(encoding="utf-8")
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise RuntimeError(
            f"{template_name}: placeholders {sorted(wanted)} but values for {sorted(values)}"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def _domain(host: str) -> str:
    """``sip.example.net:5061`` -> ``sip.example.net``; bracketed IPv6 keeps its brackets."""
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def _missing(settings: AsteriskSettings) -> list[str]:
    problems = []
    if len(settings.ami_secret) < MIN_AMI_SECRET:
        problems.append(
            f"asterisk.ami_secret must be set, at least {MIN_AMI_SECRET} characters "
            "(e.g. `openssl rand -hex 24`)"
        )
    if not settings.trunk_host:
        problems.append("asterisk.trunk_host must name the SIP trunk")
    if not settings.did_list():
        problems.append("asterisk.dids must list the numbers the trunk delivers")
    if settings.trunk_register and not (settings.trunk_username and settings.trunk_password):
        problems.append("asterisk.trunk_register needs trunk_username and trunk_password")
    if settings.trunk_password and not settings.trunk_username:
        problems.append("asterisk.trunk_password needs trunk_username")
    if settings.trunk_from_user == "username" and not settings.trunk_username:
        problems.append("asterisk.trunk_from_user = username needs trunk_username")
    for name in ("ami_secret", "trunk_host", "trunk_username", "trunk_password"):
        # deploy/callagent.env.example marks what the operator must fill in.
        if _PLACEHOLDER_VALUE.search(getattr(settings, name)):
            problems.append(f"asterisk.{name} still holds the example's placeholder")
    return problems


def render_asterisk_config(
    settings: AsteriskSettings,
    *,
    audiosocket_port: int,
    amd: AmdParameters | None = None,
) -> dict[str, str]:
    """Every file of :data:`TEMPLATE_FILES`, rendered: ``{file name: text}``.

    ``audiosocket_port`` is callagent's AudioSocket port (``network.audiosocket_port``); ``amd``
    replaces the AMD settings :func:`amd_parameters` picks. Raises :class:`AsteriskConfigError`
    listing every missing or unusable setting.
    """
    problems = _missing(settings)
    if problems:
        raise AsteriskConfigError("; ".join(problems))
    amd = amd or amd_parameters(settings.amd_on_machine)
    s = settings
    transport = s.trunk_transport
    trunk_host = _checked("asterisk.trunk_host", s.trunk_host)
    domain = _domain(trunk_host)
    username = _checked("asterisk.trunk_username", s.trunk_username)
    uri_suffix = "" if transport == "udp" else f";transport={transport}"

    # TLS to the trunk: Asterisk is the TLS client here, so no certificate of its own is needed.
    transport_options = "method = tlsv1_2" if transport == "tls" else ""
    if s.external_address:
        address = _checked("asterisk.external_address", s.external_address)
        nets = [
            _checked("asterisk.local_net", n.strip()) for n in s.local_net.split(",") if n.strip()
        ]
        transport_options = _lines(
            transport_options,
            f"external_media_address = {address}",
            f"external_signaling_address = {address}",
            *(f"local_net = {net}" for net in nets),
        )
    registration = ""
    if s.trunk_register:
        registration = _lines(
            "",
            "[trunk-reg]",
            "type = registration",
            f"transport = transport-{transport}",
            "outbound_auth = trunk-auth",
            f"server_uri = sip:{trunk_host}{uri_suffix}",
            f"client_uri = sip:{username}@{domain}{uri_suffix}",
            f"contact_user = {username}",
            "retry_interval = 60",
            "forbidden_retry_interval = 600",
            "expiration = 3600",
            # Calls arriving over the registration are tied to the trunk endpoint even when
            # the provider sends them from an address `identify` does not list.
            "line = yes",
            f"endpoint = {TRUNK_ENDPOINT}",
            "",
        )

    # An IP-authenticated trunk admits by source address: no credentials, so no auth object and
    # no outbound_auth (an auth without a username does not load).
    trunk_auth = outbound_auth = ""
    if s.trunk_username and s.trunk_password:
        trunk_auth = _lines(
            "",
            "[trunk-auth]",
            "type = auth",
            "auth_type = userpass",
            f"username = {username}",
            f"password = {_checked('asterisk.trunk_password', s.trunk_password, 'secret')}",
            "",
        )
        outbound_auth = "outbound_auth = trunk-auth\n"
    from_user = ""
    if s.trunk_from_user == "username" or (s.trunk_from_user == "auto" and username):
        from_user = f"from_user = {username}\n"

    dids = [
        _lines(
            f"exten => {_checked('asterisk.dids', did)},1,Set(CALLAGENT_DID={did})",
            f" same => n,Goto({ANSWER_CONTEXT},s,1)",
        )
        for did in s.did_list()
    ]
    transfers = [
        _lines(
            f"exten => {_checked('asterisk.transfer_targets', name)},1,"
            f"Dial(PJSIP/{_checked('asterisk.transfer_targets', number)}@{TRUNK_ENDPOINT},60)",
            " same => n,Hangup()",
        )
        for name, number in s.transfer_map().items()
    ]
    audiosocket = f"{_checked('asterisk.audiosocket_host', s.audiosocket_host)}:{audiosocket_port}"
    if s.audiosocket_format == "slin16":
        # The channel driver with c(slin16): 16 kHz for the STT (kind 0x12). Without c(...) it
        # passes the caller's codec (e.g. µ-law) labelled as slin (docs/telephony.md, "The
        # c(slin16) trap"). `g`: when callagent ends the AudioSocket leg, the caller continues in
        # the dialplan.
        connect = (
            f"exten => s,1,Dial(AudioSocket/${{CALLAGENT_AUDIOSOCKET}}/${{{CALL_ID_VARIABLE}}}"
            "/c(slin16),,g)"
        )
    else:
        # The application always converts to 8 kHz slin itself (app_audiosocket.c).
        connect = f"exten => s,1,AudioSocket(${{{CALL_ID_VARIABLE}}},${{CALLAGENT_AUDIOSOCKET}})"
    amd_steps = ""
    amd_machine = ""
    if s.amd_enabled:
        amd_steps = _lines(
            " same => n,AMD()",
            "; AMDSTATUS: HUMAN, MACHINE, NOTSURE or HANGUP; AMDCAUSE says why.",
            f" same => n,UserEvent({AMD_EVENT},CallId: ${{{CALL_ID_VARIABLE}}},"
            "Status: ${AMDSTATUS},Cause: ${AMDCAUSE})",
        )
        if s.amd_on_machine == "hangup":
            amd_steps += '\n same => n,GotoIf($["${AMDSTATUS}" = "MACHINE"]?machine)'
            amd_machine = " same => n(machine),Hangup(16)\n"

    required = [
        "res_pjsip.so",
        "chan_pjsip.so",
        "res_audiosocket.so",
        "chan_audiosocket.so" if s.audiosocket_format == "slin16" else "app_audiosocket.so",
    ]
    if s.amd_enabled:
        required.append("app_amd.so")
    if s.trunk_register:
        required.append("res_pjsip_outbound_registration.so")

    values: dict[str, dict[str, str]] = {
        "asterisk.conf": {},
        "logger.conf": {},
        "modules.conf": {"required_modules": _lines(*(f"require = {m}" for m in required))},
        "rtp.conf": {
            "rtp_port_start": str(s.rtp_port_start),
            "rtp_port_end": str(s.rtp_port_end),
        },
        "amd.conf": {name: str(value) for name, value in asdict(amd).items()},
        **{name: {} for name in CORE_FILES},
        "manager.conf": {
            "ami_bind": _checked("asterisk.ami_bind", s.ami_bind),
            "ami_port": str(s.ami_port),
            "ami_username": _checked("asterisk.ami_username", s.ami_username),
            "ami_secret": _checked("asterisk.ami_secret", s.ami_secret, "secret"),
            "ami_permits": _lines(
                *(
                    f"permit = {_checked('asterisk.ami_permit', net.strip())}"
                    for net in s.ami_permit.split(",")
                    if net.strip()
                )
            ),
        },
        "pjsip.conf": {
            "trunk_transport": transport,
            "sip_bind": _checked("asterisk.sip_bind", s.sip_bind),
            "sip_port": str(s.sip_port),
            "transport_options": transport_options,
            "uri_suffix": uri_suffix,
            "registration": registration,
            "trunk_auth": trunk_auth,
            "outbound_auth": outbound_auth,
            "qualify_frequency": str(s.trunk_qualify_interval_s),
            "trunk_host": trunk_host,
            "trunk_domain": domain,
            "codecs": _checked("asterisk.codecs", s.codecs.replace(" ", ""), "list"),
            "from_user": from_user,
        },
        "extensions.conf": {
            "audiosocket_address": audiosocket,
            "did_extensions": "\n".join(dids),
            "amd_steps": amd_steps,
            "amd_machine": amd_machine,
            "connect_step": connect,
            "transfer_extensions": "\n".join(transfers),
        },
    }
    return {name: _fill(name, values[name]) for name in TEMPLATE_FILES}


def write_asterisk_config(files: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write rendered files into ``out_dir`` (created if needed); returns the paths written.

    Files with a password are created owner/group-readable only, never world-readable, even for
    a moment: the mode is set when the file is created.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        mode = 0o640 if name in SECRET_FILES else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(path, mode)  # an existing file keeps its old mode through O_CREAT
        written.append(path)
    return written
