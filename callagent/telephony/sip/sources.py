"""Who may call the direct SIP endpoint: the registrar and the listed networks (docs/telephony.md).

Without this, anyone who reaches the SIP port could talk to the agent (and run up its model
time, or fill its call slots). An INVITE from an address that is neither in
``sip.allowed_networks`` nor one of the registrar's addresses is answered 403 Forbidden before
any media is set up. The decision is pure and made on pjsip's thread; the registrar's name is
resolved once, at start (:meth:`CallerSources.resolve`), so no lookup ever runs there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from callagent.settings import SipSettings

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a dual-stack socket's view of an IPv4
    peer) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_source(source: str) -> Address | None:
    """The IP address of pjsip's ``srcAddress`` (``192.0.2.1:5060``, ``[2001:db8::1]:5060``,
    or a bare address); None when it is none of these."""
    host = source.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return _plain(ipaddress.ip_address(host))
    except ValueError:
        return None


def registrar_host(registrar: str) -> str:
    """The host part of ``sip.registrar`` (``host``, ``host:port``, ``[v6]:port``)."""
    if registrar.startswith("["):
        return registrar[1:].partition("]")[0]
    if registrar.count(":") == 1:
        return registrar.partition(":")[0]
    return registrar


@dataclass(frozen=True)
class CallerSources:
    """The networks and single addresses calls are answered from."""

    networks: tuple[Network, ...]
    registrar: frozenset[Address] = frozenset()

    def allows(self, source: str) -> bool:
        """Whether a call whose packets come from ``source`` (pjsip's ``srcAddress``) may be
        answered. An address that cannot be parsed is refused."""
        address = parse_source(source)
        if address is None:
            return False
        return address in self.registrar or any(address in net for net in self.networks)

    @classmethod
    async def resolve(cls, settings: SipSettings) -> CallerSources:
        """The sources of ``settings``: ``allowed_networks``, and the addresses the registrar's
        name resolves to now. A registrar that does not resolve adds nothing (its calls are
        then refused unless a listed network holds them); that is logged."""
        return cls(
            networks=settings.allowed_network_list(),
            registrar=frozenset(await _addresses(registrar_host(settings.registrar)))
            if settings.registrar
            else frozenset(),
        )


async def _addresses(host: str) -> Iterable[Address]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as error:
        log.warning(
            "SIP: registrar %s does not resolve (%s); only sip.allowed_networks may call",
            host,
            error,
        )
        return ()
    return {_plain(ipaddress.ip_address(info[4][0])) for info in infos}
