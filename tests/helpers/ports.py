"""Free loopback ports for the test's peers (Asterisk, sipp, baresip, servers).

A single port comes from the kernel (bind to 0). A *block* of consecutive UDP ports — sipp's
``-mp`` binds audio RTP/RTCP at P, P+1 and video at P+2, P+3; Asterisk's RTP range — is picked
below the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768–60999 on
Debian), so no socket the kernel hands out later can land inside it: a random ephemeral base once
collided at P+2 ("Unable to bind video RTP socket ... errno = 98").
"""

from __future__ import annotations

import contextlib
import random
import socket

_BLOCK_RANGE = (10000, 30000)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_udp_block(count: int, host: str = "127.0.0.1") -> int:
    """An even port P below the ephemeral range such that P … P+count-1 are all free on ``host``."""
    low, high = _BLOCK_RANGE
    for _ in range(200):
        base = random.randrange(low, high - count, 2)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind((host, port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free UDP ports on {host} in {low}-{high}")
