"""Asterisk's configuration rendered from settings: structure, values, refusals.

Asterisk is not available here; every rendered variant goes through :mod:`config_check`, a check
built on the rules of Asterisk's config parser (test_config_check.py), and the AMI simulator
(test_ami.py) runs on the rendered manager.conf and extensions.conf.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import types
from pathlib import Path

import pytest

from callagent.settings import AsteriskSettings
from callagent.telephony.asterisk.config import (
    CORE_FILES,
    SECRET_FILES,
    TEMPLATE_FILES,
    AmdParameters,
    AsteriskConfigError,
    amd_parameters,
    render_asterisk_config,
    write_asterisk_config,
)
from callagent.telephony.asterisk.config_check import (
    check_asterisk_config,
    parse_conf,
)

from helpers.asterisk_settings import SECRET, render, settings_for

VARIANTS = {
    "defaults": {},
    "nat-hangup-on-machine": {
        "CALLAGENT_EXTERNAL_ADDRESS": "203.0.113.5",
        "CALLAGENT_LOCAL_NET": "10.0.0.0/8, 192.168.0.0/16",
        "CALLAGENT_AMD_ON_MACHINE": "hangup",
    },
    "slin-no-amd-no-register-tls": {
        "CALLAGENT_AUDIOSOCKET_FORMAT": "slin",
        "CALLAGENT_AMD": "false",
        "CALLAGENT_TRUNK_REGISTER": "false",
        "CALLAGENT_TRUNK_TRANSPORT": "tls",
        "CALLAGENT_TRUNK_HOST": "sip.example.net:5061",
        "CALLAGENT_TRANSFER_TARGETS": "",
    },
    "docker": {
        "CALLAGENT_ASTERISK_AUDIOSOCKET_HOST": "callagent",
        "CALLAGENT_AMI_BIND": "0.0.0.0",
        "CALLAGENT_AMI_PERMIT": "172.28.0.0/16",
    },
    "ip-authenticated-trunk-qualified": {
        "CALLAGENT_TRUNK_USERNAME": "",
        "CALLAGENT_TRUNK_PASSWORD": "",
        "CALLAGENT_TRUNK_REGISTER": "false",
        "CALLAGENT_TRUNK_QUALIFY_INTERVAL_S": "60",
    },
}


def section(files: dict[str, str], name: str, header: str) -> dict[str, list[str]]:
    """{key: [values]} of the first [header] of a rendered file."""
    for sec in parse_conf(files[name], name):
        if sec.name == header:
            result: dict[str, list[str]] = {}
            for key, value in sec.entries:
                result.setdefault(key, []).append(value)
            return result
    raise AssertionError(f"no [{header}] in {name}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_renders_all_files_and_passes_the_check(variant: str) -> None:
    files = render(**VARIANTS[variant])
    assert tuple(files) == TEMPLATE_FILES
    assert check_asterisk_config(files) == []
    for text in files.values():
        assert "{{" not in text
        assert "}}" not in text


def test_inbound_answers_only_the_dids_then_answer_event_and_audiosocket_in_order() -> None:
    files = render()
    inbound = section(files, "extensions.conf", "callagent-inbound")
    assert inbound["exten"] == [
        "+4930123456,1,Set(CALLAGENT_DID=+4930123456)",
        "4930999,1,Set(CALLAGENT_DID=4930999)",
        "i,1,Hangup(1)",
    ]
    answer = section(files, "extensions.conf", "callagent-answer")
    steps = [answer["exten"][0], *answer["same"]]
    apps = [step.split(",", 2 if step is steps[0] else 1)[-1].split("(")[0] for step in steps]
    # AudioSocket refuses an unanswered channel: Answer() comes first (docs/telephony.md).
    assert apps == ["Answer", "Set", "Set", "UserEvent", "Gosub", "Hangup"]
    assert "${UUID()}" in steps[1]
    assert "FILTER(0123456789+,${CALLERID(num)})" in steps[2]
    assert (
        "UserEvent(CallagentInbound,CallId: ${CALLAGENT_UUID},Did: ${CALLAGENT_DID},"
        "Caller: ${CALLAGENT_CALLER})" in steps[3]
    )


def test_slin16_uses_the_channel_driver_with_the_codec_option_and_slin_the_application() -> None:
    connect16 = section(render(), "extensions.conf", "callagent-connect")["exten"][0]
    # Without c(slin16) the channel driver passes the caller's codec labelled as slin
    # (docs/telephony.md, "The c(slin16) trap").
    assert connect16 == (
        "s,1,Dial(AudioSocket/${CALLAGENT_AUDIOSOCKET}/${CALLAGENT_UUID}/c(slin16),,g)"
    )
    assert "require = chan_audiosocket.so" in render()["modules.conf"]
    slin = render(CALLAGENT_AUDIOSOCKET_FORMAT="slin")
    assert section(slin, "extensions.conf", "callagent-connect")["exten"][0] == (
        "s,1,AudioSocket(${CALLAGENT_UUID},${CALLAGENT_AUDIOSOCKET})"
    )
    assert "require = app_audiosocket.so" in slin["modules.conf"]


def test_the_audiosocket_address_is_where_asterisk_reaches_callagent() -> None:
    files = render(
        CALLAGENT_ASTERISK_AUDIOSOCKET_HOST="callagent", CALLAGENT_AUDIOSOCKET_PORT="9100"
    )
    assert section(files, "extensions.conf", "globals") == {
        "CALLAGENT_AUDIOSOCKET": ["callagent:9100"]
    }


def test_outbound_runs_amd_and_reports_it_before_connecting() -> None:
    outbound = section(render(), "extensions.conf", "callagent-outbound")["same"]
    assert outbound[0] == "n,AMD()"
    assert outbound[1].startswith("n,UserEvent(CallagentAmd,CallId: ${CALLAGENT_UUID},")
    assert "Status: ${AMDSTATUS}" in outbound[1]
    assert outbound[2] == "n,Gosub(callagent-connect,s,1)"
    hangup = section(
        render(CALLAGENT_AMD_ON_MACHINE="hangup"), "extensions.conf", "callagent-outbound"
    )
    assert 'n,GotoIf($["${AMDSTATUS}" = "MACHINE"]?machine)' in hangup["same"]
    assert "n(machine),Hangup(16)" in hangup["same"]
    no_amd = render(CALLAGENT_AMD="false")
    assert "n,AMD()" not in no_amd["extensions.conf"]
    assert "app_amd" not in no_amd["modules.conf"]


def test_amd_settings_are_the_documented_choice_not_asterisks_defaults() -> None:
    amd = section(render(), "amd.conf", "general")
    assert {k: int(v[0]) for k, v in amd.items()} == dataclasses.asdict(AmdParameters())
    assert amd["maximum_number_of_words"] == ["5"]  # Asterisk's 2 hears people as machines


def test_amd_listens_longer_when_a_machine_verdict_hangs_up() -> None:
    """A wrong MACHINE hangs a person up with ``hangup``; with ``connect`` it costs nothing and
    only the silence the callee hears while AMD listens matters (docs/telephony.md)."""
    connect = section(render(), "amd.conf", "general")
    hangup = section(render(CALLAGENT_AMD_ON_MACHINE="hangup"), "amd.conf", "general")
    assert (connect["initial_silence"], connect["total_analysis_time"]) == (["2000"], ["4000"])
    assert (hangup["initial_silence"], hangup["total_analysis_time"]) == (["3000"], ["5000"])
    assert {k: int(v[0]) for k, v in hangup.items()} == dataclasses.asdict(amd_parameters("hangup"))


def test_transfer_context_holds_exactly_the_allow_list() -> None:
    transfer = section(render(), "extensions.conf", "callagent-transfer")
    assert transfer["exten"] == [
        "sales,1,Dial(PJSIP/+4930111@trunk,60)",
        "support,1,Dial(PJSIP/0301234@trunk,60)",
        "i,1,Hangup(1)",
    ]
    empty = section(render(CALLAGENT_TRANSFER_TARGETS=""), "extensions.conf", "callagent-transfer")
    assert empty["exten"] == ["i,1,Hangup(1)"]


def test_ami_account_is_bound_to_the_callagent_host_with_least_privileges() -> None:
    files = render(CALLAGENT_AMI_PERMIT="10.1.2.3/32,10.1.2.4/32")
    general = section(files, "manager.conf", "general")
    assert general["bindaddr"] == ["127.0.0.1"]
    user = section(files, "manager.conf", "callagent")
    assert user["secret"] == [SECRET]
    assert user["deny"] == ["0.0.0.0/0.0.0.0", "::/0"]
    assert user["permit"] == ["10.1.2.3/32", "10.1.2.4/32"]
    assert user["read"] == ["call,dtmf,user"]
    assert user["write"] == ["call,originate"]


def test_trunk_values_land_in_pjsip_conf() -> None:
    files = render(
        CALLAGENT_EXTERNAL_ADDRESS="203.0.113.5",
        CALLAGENT_LOCAL_NET="10.0.0.0/8",
        CALLAGENT_ASTERISK_SIP_PORT="5080",
    )
    sections = parse_conf(files["pjsip.conf"])
    by_key = {(s.name, s.get("type")): s for s in sections}
    assert by_key["transport-udp", "transport"].get("bind") == "0.0.0.0:5080"
    assert by_key["transport-udp", "transport"].get("external_media_address") == "203.0.113.5"
    assert by_key["transport-udp", "transport"].get_all("local_net") == ["10.0.0.0/8"]
    reg = by_key["trunk-reg", "registration"]
    assert reg.get("server_uri") == "sip:sip.example.net"
    assert reg.get("client_uri") == "sip:u4930@sip.example.net"
    auth = by_key["trunk-auth", "auth"]
    assert (auth.get("username"), auth.get("password")) == ("u4930", "trunk!pass#1")
    endpoint = by_key["trunk", "endpoint"]
    assert endpoint.get("context") == "callagent-inbound"
    assert endpoint.get("allow") == "g722,alaw,ulaw"
    assert by_key["trunk-identify", "identify"].get("match") == "sip.example.net"
    rtp = section(files, "rtp.conf", "general")
    assert (rtp["rtpstart"], rtp["rtpend"]) == (["10000"], ["10200"])
    assert section(files, "asterisk.conf", "options")["transmit_silence"] == ["yes"]


def pjsip(files: dict[str, str]) -> dict[tuple[str, str | None], list[tuple[str, str]]]:
    """pjsip.conf's objects: {(name, type): [(key, value), ...]}."""
    return {(s.name, s.get("type")): s.entries for s in parse_conf(files["pjsip.conf"])}


def test_an_ip_authenticated_trunk_has_no_auth_registration_or_from_user() -> None:
    """No credentials: the trunk admits by source address. An auth object without a username
    would not load, so none is written and nothing refers to one; the From then carries the
    call's caller id (DESIGN.md "Known traps")."""
    files = render(
        CALLAGENT_TRUNK_USERNAME="", CALLAGENT_TRUNK_PASSWORD="", CALLAGENT_TRUNK_REGISTER="false"
    )
    assert check_asterisk_config(files) == []
    objects = pjsip(files)
    assert {kind for _, kind in objects} == {"global", "transport", "aor", "endpoint", "identify"}
    endpoint = dict(objects["trunk", "endpoint"])
    assert "outbound_auth" not in endpoint
    assert "from_user" not in endpoint
    assert endpoint["send_pai"] == "yes"
    assert "trunk-auth" not in files["pjsip.conf"]


def test_the_caller_id_goes_out_as_p_asserted_identity_and_from_user_as_set() -> None:
    """With credentials (``auto``) the From user is the account and the caller id travels as
    P-Asserted-Identity; ``caller_id`` puts the caller id in the From as well; ``username``
    pins the account also without a password (an IP-authenticated trunk that wants its
    account number in the From)."""
    default = dict(pjsip(render())["trunk", "endpoint"])
    assert (default["from_user"], default["send_pai"]) == ("u4930", "yes")
    assert default["outbound_auth"] == "trunk-auth"
    from_caller = dict(pjsip(render(CALLAGENT_TRUNK_FROM_USER="caller_id"))["trunk", "endpoint"])
    assert "from_user" not in from_caller
    assert from_caller["send_pai"] == "yes"
    account_only = render(
        CALLAGENT_TRUNK_PASSWORD="",
        CALLAGENT_TRUNK_REGISTER="false",
        CALLAGENT_TRUNK_FROM_USER="username",
    )
    assert check_asterisk_config(account_only) == []
    endpoint = dict(pjsip(account_only)["trunk", "endpoint"])
    assert endpoint["from_user"] == "u4930"
    assert "outbound_auth" not in endpoint


def test_a_from_user_or_password_without_a_username_is_refused() -> None:
    with pytest.raises(AsteriskConfigError, match="trunk_from_user = username needs"):
        render(
            CALLAGENT_TRUNK_USERNAME="",
            CALLAGENT_TRUNK_PASSWORD="",
            CALLAGENT_TRUNK_REGISTER="false",
            CALLAGENT_TRUNK_FROM_USER="username",
        )
    with pytest.raises(AsteriskConfigError, match="trunk_password needs trunk_username"):
        render(CALLAGENT_TRUNK_USERNAME="", CALLAGENT_TRUNK_REGISTER="false")


def test_the_trunk_is_not_pinged_unless_asked() -> None:
    """Many providers never answer OPTIONS, and Asterisk refuses every call to a trunk whose
    pings go unanswered: qualify is off unless set. The aor's value is written before its
    contact, which takes the value the aor has when its line is read."""
    assert pjsip(render())["trunk", "aor"][:3] == [
        ("type", "aor"),
        ("qualify_frequency", "0"),
        ("contact", "sip:sip.example.net"),
    ]
    qualified = pjsip(render(CALLAGENT_TRUNK_QUALIFY_INTERVAL_S="30"))["trunk", "aor"]
    assert ("qualify_frequency", "30") in qualified


def test_the_files_asterisk_reads_at_every_start_are_rendered() -> None:
    """Without them each start logs an error per file (tested on the real Asterisk)."""
    files = render()
    for name in CORE_FILES:
        assert name in files
        parse_conf(files[name], name)
    assert section(files, "cdr.conf", "general") == {"enable": ["no"]}
    assert section(files, "features.conf", "featuremap") == {}
    assert section(files, "indications.conf", "general") == {"country": ["us"]}


def test_missing_settings_are_all_named_at_once() -> None:
    with pytest.raises(AsteriskConfigError) as error:
        render_asterisk_config(AsteriskSettings(ami_secret="short"), audiosocket_port=9092)
    message = str(error.value)
    for name in ("ami_secret", "trunk_host", "dids", "trunk_register"):
        assert name in message


def test_the_renderer_checks_values_again_even_if_settings_were_bypassed() -> None:
    real = settings_for().asterisk
    fields = {name: getattr(real, name) for name in real.__struct_fields__}
    forged = types.SimpleNamespace(
        **{**fields, "trunk_host": "x\n[evil]"},
        did_list=real.did_list,
        transfer_map=real.transfer_map,
    )
    with pytest.raises(AsteriskConfigError, match="trunk_host"):
        render_asterisk_config(forged, audiosocket_port=9092)  # type: ignore[arg-type]


def test_files_with_passwords_are_not_world_readable(tmp_path: Path) -> None:
    out = tmp_path / "asterisk"
    out.mkdir()
    (out / "manager.conf").write_text("old")
    os.chmod(out / "manager.conf", 0o666)
    paths = write_asterisk_config(render(), out)
    assert {p.name for p in paths} == set(TEMPLATE_FILES)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o640 if path.name in SECRET_FILES else 0o644), path.name
