"""A syntax and consistency check of Asterisk configuration files.

Asterisk itself is not available where callagent is built and tested, so this module checks what
can be checked without it, following the rules of Asterisk's config parser (``main/config.c``):
``[section]`` headers (optionally ``(!)`` or ``(template)``), ``key = value`` / ``key => value``
lines, ``;`` comments. On top of the syntax it checks what a typo would break silently: known
object types and option names in ``pjsip.conf``, references between objects, dialplan lines
(``exten => name,priority,App(args)``) with known applications, balanced brackets and existing
``Goto``/``Gosub`` targets, AMI privilege classes in ``manager.conf``.

``callagent asterisk-config`` refuses to write files that fail; the tests run it on every rendered
variant. :func:`parse_conf` is also how the AMI simulator reads the rendered ``manager.conf`` and
``extensions.conf``, so the simulator enforces exactly the users, privileges and dialplan that
would be deployed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

AMI_CLASSES: Final = frozenset(
    {
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
        "all",
        "none",
    }
)
"""Privilege classes of ``manager.conf`` ``read`` / ``write`` (Asterisk's ``perms[]``)."""

_PJSIP_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "global": frozenset(
        {
            "type",
            "user_agent",
            "unidentified_request_count",
            "unidentified_request_period",
            "unidentified_request_prune_interval",
            "endpoint_identifier_order",
            "default_outbound_endpoint",
            "keep_alive_interval",
        }
    ),
    "transport": frozenset(
        {
            "type",
            "protocol",
            "bind",
            "external_media_address",
            "external_signaling_address",
            "external_signaling_port",
            "local_net",
            "cert_file",
            "priv_key_file",
            "method",
            "verify_server",
        }
    ),
    "registration": frozenset(
        {
            "type",
            "transport",
            "outbound_auth",
            "server_uri",
            "client_uri",
            "contact_user",
            "retry_interval",
            "forbidden_retry_interval",
            "fatal_retry_interval",
            "expiration",
            "line",
            "endpoint",
            "max_retries",
        }
    ),
    "auth": frozenset({"type", "auth_type", "username", "password", "realm"}),
    "aor": frozenset({"type", "contact", "qualify_frequency", "max_contacts", "remove_existing"}),
    "endpoint": frozenset(
        {
            "type",
            "transport",
            "context",
            "disallow",
            "allow",
            "outbound_auth",
            "auth",
            "aors",
            "from_user",
            "from_domain",
            "direct_media",
            "rtp_symmetric",
            "force_rport",
            "rewrite_contact",
            "dtmf_mode",
            "trust_id_inbound",
            "trust_id_outbound",
            "send_pai",
            "callerid",
        }
    ),
    "identify": frozenset({"type", "endpoint", "match"}),
}

_APPLICATIONS: Final = frozenset(
    {
        "Answer",
        "AMD",
        "AudioSocket",
        "Dial",
        "Gosub",
        "Goto",
        "GotoIf",
        "Hangup",
        "NoOp",
        "Return",
        "Set",
        "UserEvent",
    }
)
"""Applications the rendered dialplan may use; anything else is a typo or an injection."""

_MODULE_KEYS: Final = frozenset({"autoload", "require", "noload", "preload", "load"})


class ConfSyntaxError(ValueError):
    """A line Asterisk's config parser would reject or misread."""


@dataclass
class ConfSection:
    """One ``[name]`` block: its options (``(!)``, template names) and its entries in order."""

    name: str
    options: tuple[str, ...] = ()
    entries: list[tuple[str, str]] = field(default_factory=list)
    line: int = 0

    def get(self, key: str) -> str | None:
        """The last value of ``key`` (Asterisk keeps the last of a repeated scalar option)."""
        values = self.get_all(key)
        return values[-1] if values else None

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        return [value for name, value in self.entries if name == key]


_SECTION = re.compile(r"\[([^\[\]]+)\](?:\(([^()]*)\))?")


def parse_conf(text: str, filename: str = "<conf>") -> list[ConfSection]:
    """Parse one Asterisk ``.conf`` file; raises :class:`ConfSyntaxError` naming the line."""
    sections: list[ConfSection] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{filename}:{number}"
        line = _strip_comment(raw, where).strip()
        if not line:
            continue
        if line.startswith("#"):
            raise ConfSyntaxError(f"{where}: directives (#include, #exec) are not rendered")
        if line.startswith("["):
            match = _SECTION.fullmatch(line)
            if match is None:
                raise ConfSyntaxError(f"{where}: malformed section header {line!r}")
            options = tuple(o.strip() for o in (match.group(2) or "").split(",") if o.strip())
            sections.append(ConfSection(match.group(1).strip(), options, line=number))
            continue
        if not sections:
            raise ConfSyntaxError(f"{where}: {line!r} is outside any [section]")
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfSyntaxError(f"{where}: expected `key = value`, got {line!r}")
        sections[-1].entries.append((key.strip(), value.removeprefix(">").strip()))
    return sections


def _strip_comment(line: str, where: str) -> str:
    if ";--" in line or "--;" in line:
        raise ConfSyntaxError(f"{where}: block comments are not rendered")
    out = []
    escaped = False
    for char in line:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == ";":
            break
        else:
            out.append(char)
    return "".join(out)


def check_asterisk_config(files: Mapping[str, str]) -> list[str]:
    """Every problem found in a set of rendered files (``{name: text}``); empty when sound."""
    problems: list[str] = []
    parsed: dict[str, list[ConfSection]] = {}
    for name, text in files.items():
        try:
            parsed[name] = parse_conf(text, name)
        except ConfSyntaxError as exc:
            problems.append(str(exc))
    pjsip = parsed.get("pjsip.conf", [])
    endpoints = {s.name for s in pjsip if s.get("type") == "endpoint"}
    checks = {
        "pjsip.conf": _check_pjsip,
        "extensions.conf": lambda sections: _check_dialplan(sections, endpoints),
        "manager.conf": _check_manager,
        "modules.conf": _check_modules,
        "asterisk.conf": _check_asterisk,
        "amd.conf": _check_integers,
        "rtp.conf": _check_rtp,
    }
    for name, check in checks.items():
        if name in parsed:
            problems += [f"{name}: {p}" for p in check(parsed[name])]
    return problems


def _check_pjsip(sections: list[ConfSection]) -> list[str]:
    problems = []
    by_type: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for section in sections:
        kind = section.get("type")
        if kind not in _PJSIP_OPTIONS:
            problems.append(f"[{section.name}] has unknown type {kind!r}")
            continue
        if (section.name, kind) in seen:
            problems.append(f"[{section.name}] is a second {kind} of that name")
        seen.add((section.name, kind))
        by_type.setdefault(kind, set()).add(section.name)
        for key, value in section.entries:
            if key not in _PJSIP_OPTIONS[kind]:
                problems.append(f"[{section.name}] ({kind}) has unknown option {key!r}")
            if not value:
                problems.append(f"[{section.name}] option {key!r} is empty")
    references = {
        "transport": "transport",
        "outbound_auth": "auth",
        "auth": "auth",
        "aors": "aor",
        "endpoint": "endpoint",
    }
    for section in sections:
        for key, kind in references.items():
            for value in section.get_all(key):
                for target in value.split(","):
                    if target.strip() not in by_type.get(kind, set()):
                        problems.append(
                            f"[{section.name}] {key} = {target} names no {kind} section"
                        )
    return problems


_EXTEN = re.compile(r"(?P<name>_?[^,\s]+),(?P<prio>\d+|n|hint)(?:\((?P<label>\w+)\))?,(?P<app>.*)")
_SAME = re.compile(r"(?P<prio>\d+|n)(?:\((?P<label>\w+)\))?,(?P<app>.*)")
_APP = re.compile(r"(?P<app>\w+)\((?P<args>.*)\)")


def _balanced(text: str) -> bool:
    pairs = {")": "(", "}": "{", "]": "["}
    stack: list[str] = []
    for char in text:
        if char in "({[":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def _check_dialplan(sections: list[ConfSection], endpoints: set[str]) -> list[str]:
    problems = []
    contexts: dict[str, dict[str, set[str]]] = {}  # context -> extension -> labels
    calls: list[tuple[str, str, str, str, str]] = []  # where, context, exten, app, arguments
    globals_: set[str] = set()
    for section in sections:
        if section.name == "general":
            continue
        if section.name == "globals":
            globals_ |= {key for key, _ in section.entries}
            continue
        extensions = contexts.setdefault(section.name, {})
        current: str | None = None
        for key, value in section.entries:
            where = f"[{section.name}] {key} => {value}"
            if key == "exten":
                match = _EXTEN.fullmatch(value)
                if match is None:
                    problems.append(f"{where}: not `name,priority,App(args)`")
                    continue
                current = match["name"]
                if match["prio"] not in ("1", "hint") and current not in extensions:
                    problems.append(f"{where}: extension starts at priority {match['prio']}")
                extensions.setdefault(current, set())
            elif key == "same":
                match = _SAME.fullmatch(value)
                if match is None or current is None:
                    problems.append(f"{where}: `same` without a preceding exten")
                    continue
            else:
                problems.append(f"{where}: only exten and same lines are rendered")
                continue
            if match["label"]:
                extensions[current].add(match["label"])
            app = _APP.fullmatch(match["app"])
            if app is None or app["app"] not in _APPLICATIONS:
                problems.append(f"{where}: unknown or malformed application")
                continue
            if not _balanced(app["args"]):
                problems.append(f"{where}: unbalanced brackets")
            calls.append((where, section.name, current, app["app"], app["args"]))
    for where, context, exten, app, args in calls:
        if app in ("Goto", "Gosub"):
            parts = args.split(",")
            if len(parts) == 3 and not any("$" in p for p in parts):
                target = contexts.get(parts[0], {})
                if parts[1] not in target:
                    problems.append(f"{where}: {app} target {parts[0]},{parts[1]} does not exist")
        if app == "GotoIf":
            label = args.rsplit("?", 1)[-1].split(":")[0]
            if label and label not in contexts[context][exten]:
                problems.append(f"{where}: GotoIf label {label!r} not in the extension")
        if app == "Dial" and args.startswith("PJSIP/"):
            endpoint = args.split(",")[0].rsplit("@", 1)[-1]
            if endpoint not in endpoints:
                problems.append(f"{where}: Dial to unknown PJSIP endpoint {endpoint!r}")
        for variable in re.findall(r"\$\{(CALLAGENT_AUDIOSOCKET)\}", args):
            if variable not in globals_:
                problems.append(f"{where}: ${{{variable}}} is not set in [globals]")
    return problems


def _check_manager(sections: list[ConfSection]) -> list[str]:
    problems = []
    general = [s for s in sections if s.name == "general"]
    if len(general) != 1 or general[0].get("enabled") != "yes":
        problems.append("[general] must exist once, with enabled = yes")
    for section in sections:
        if section.name == "general":
            continue
        if not section.get("secret"):
            problems.append(f"[{section.name}] has no secret")
        for key in ("read", "write"):
            classes = set((section.get(key) or "").split(","))
            if not classes or classes - AMI_CLASSES:
                problems.append(f"[{section.name}] {key} has unknown classes {classes}")
            if classes & {"all", "system", "command", "config"}:
                problems.append(f"[{section.name}] {key} grants more than callagent needs")
        keys = [key for key, _ in section.entries if key in ("deny", "permit")]
        if not keys or keys[0] != "deny" or "permit" not in keys:
            problems.append(f"[{section.name}] must deny everything, then permit")
    return problems


def _check_modules(sections: list[ConfSection]) -> list[str]:
    problems = []
    for section in sections:
        if section.name != "modules":
            problems.append(f"unexpected section [{section.name}]")
        for key, value in section.entries:
            if key not in _MODULE_KEYS:
                problems.append(f"unknown key {key!r}")
            elif key != "autoload" and not value.endswith(".so"):
                problems.append(f"{key} = {value} is not a module file")
    return problems


def _check_asterisk(sections: list[ConfSection]) -> list[str]:
    options = [s for s in sections if s.name == "options"]
    if not options or options[0].get("transmit_silence") != "yes":
        # A silent caller must still send frames: the turn timing counts on an unbroken 20 ms
        # stream (docs/telephony.md, "The c(slin16) trap and transmit_silence").
        return ["[options] must set transmit_silence = yes"]
    return []


def _check_integers(sections: list[ConfSection]) -> list[str]:
    return [
        f"[{section.name}] {key} = {value} is not a whole number"
        for section in sections
        for key, value in section.entries
        if not value.isdigit()
    ]


def _check_rtp(sections: list[ConfSection]) -> list[str]:
    general = next((s for s in sections if s.name == "general"), None)
    if general is None:
        return ["no [general] section"]
    start, end = general.get("rtpstart") or "", general.get("rtpend") or ""
    if not (start.isdigit() and end.isdigit() and int(start) < int(end)):
        return [f"rtpstart {start!r} / rtpend {end!r} is not a port range"]
    return []
