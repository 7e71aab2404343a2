"""Who may call the direct SIP endpoint (docs/telephony.md "Direct SIP"): the decision alone,
on the addresses pjsip reports. The endpoint's 403 to a real sipp caller is in
test_endpoint.py."""

from __future__ import annotations

from callagent.settings import SipSettings
from callagent.telephony.sip.sources import CallerSources, parse_source, registrar_host


def test_source_addresses_as_pjsip_prints_them() -> None:
    assert str(parse_source("192.0.2.1:5060")) == "192.0.2.1"
    assert str(parse_source("[2001:db8::1]:5060")) == "2001:db8::1"
    assert str(parse_source("2001:db8::1")) == "2001:db8::1"
    assert str(parse_source("[::ffff:192.0.2.1]:5060")) == "192.0.2.1"  # dual-stack socket
    assert parse_source("") is None
    assert parse_source("sip.example.net:5060") is None
    assert registrar_host("sip.example.net:5070") == "sip.example.net"
    assert registrar_host("[2001:db8::5]:5060") == "2001:db8::5"
    assert registrar_host("2001:db8::5") == "2001:db8::5"


async def test_by_default_only_this_machine_may_call() -> None:
    sources = await CallerSources.resolve(SipSettings(enabled=True))
    assert sources.allows("127.0.0.1:5060")
    assert sources.allows("127.0.0.2:40000")
    assert sources.allows("[::1]:5060")
    assert not sources.allows("192.0.2.1:5060")
    assert not sources.allows("[2001:db8::1]:5060")
    assert not sources.allows("garbage")


async def test_the_registrar_and_listed_networks_may_call() -> None:
    settings = SipSettings(
        enabled=True,
        registrar="198.51.100.7:5070",
        username="u",
        allowed_networks="10.20.0.0/16,2001:db8:1::/48",
    )
    sources = await CallerSources.resolve(settings)
    assert sources.allows("198.51.100.7:5060")  # the trunk calls from its registrar address
    assert sources.allows("[::ffff:198.51.100.7]:5060")
    assert not sources.allows("198.51.100.8:5060")
    assert sources.allows("10.20.3.4:5060")
    assert not sources.allows("10.21.0.1:5060")
    assert sources.allows("[2001:db8:1::9]:5060")
    assert not sources.allows("127.0.0.1:5060")  # a list replaces the default
    by_name = await CallerSources.resolve(
        SipSettings(enabled=True, registrar="localhost:5070", username="u", allowed_networks="")
    )
    assert by_name.allows("127.0.0.1:5060")  # the name is resolved at start
    assert not by_name.allows("10.20.3.4:5060")
