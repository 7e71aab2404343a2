"""The webhook delivery worker ``callagent serve`` runs (docs/webhooks.md).

It takes due deliveries from the store (``store/services/webhooks.py``: each one is this node's
under a lease, a call's events in order), POSTs each event's JSON to its endpoint, signed, and
writes what came back. Nothing it holds in memory matters across a restart: a delivery it had
when the process died is taken again once its lease runs out - at least once, never lost; the
event id lets the receiver drop a second copy.

**Signature.** ``X-Callagent-Signature: v1=<hex>`` is HMAC-SHA256, keyed with the endpoint's
secret, over ``timestamp + "." + body`` where ``timestamp`` is ``X-Callagent-Timestamp`` (Unix
seconds when this attempt was made): the receiver checks the body is ours and fresh.

**Retries.** Anything but a 2xx answer within the timeout is retried: exponential backoff from
``backoff_base_s``, doubled per attempt up to ``backoff_max_s``, with "equal jitter" (half the
delay fixed, half random) so endpoints that come back are not hit by every node at once; after
``max_attempts`` the delivery is ``failed`` (the API can redeliver it).

**Retention.** Every ``retention_interval_s`` (and at start) the worker deletes what was
delivered more than ``retention_days`` ago, in batches; nothing undelivered is ever deleted.
Every node that sends sweeps too: the deletes are idempotent, and a batch is short.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from callagent.background import BackgroundLoop
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import webhooks
from callagent.store.services.events import DEFAULT_MAX_ATTEMPTS
from callagent.store.services.webhooks import AttemptResult, DeliveryLease, LeaseLost

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Callagent-Signature"
TIMESTAMP_HEADER: Final = "X-Callagent-Timestamp"
EVENT_ID_HEADER: Final = "X-Callagent-Event-Id"
EVENT_TYPE_HEADER: Final = "X-Callagent-Event-Type"
DELIVERY_ID_HEADER: Final = "X-Callagent-Delivery-Id"
ATTEMPT_HEADER: Final = "X-Callagent-Attempt"
USER_AGENT: Final = "callagent-webhooks/1"


@dataclass(frozen=True)
class WebhookParams:
    """How the worker sends and how long it keeps what it sent; ``serve`` builds it from the
    ``webhooks`` settings (docs/configuration.md), which validate the values."""

    workers: int = 4
    """Deliveries this node sends at once (each its own claim loop)."""
    poll_interval_s: float = 1.0
    """Pause between looks for a due delivery when there was none."""
    connect_timeout_s: float = 5.0
    timeout_s: float = 10.0
    """The whole attempt - connect, send, answer - is abandoned after this."""
    lease_s: float = 60.0
    """How long a claimed delivery stays this node's; longer than ``timeout_s``."""
    backoff_base_s: float = 15.0
    backoff_max_s: float = 3600.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Tries of a delivery before it is ``failed`` (fixed when this node first sends it)."""
    retention_days: float = 30.0
    """Delivered events and deliveries are deleted this long after; 0 keeps them."""
    retention_interval_s: float = 3600.0
    """Pause between retention sweeps."""
    retention_batch: int = 500
    """Rows deleted per transaction by a sweep."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``v1=`` and HMAC-SHA256(secret, timestamp "." body)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def backoff_s(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """The pause after failed attempt ``attempt`` (1 for the first): ``base * 2^(attempt-1)``
    capped at ``max``, half of it fixed and half random."""
    delay = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return delay / 2 + rand() * delay / 2


def headers_for(lease: DeliveryLease, timestamp: str) -> dict[str, str]:
    """The headers of one attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(lease.event_id),
        EVENT_TYPE_HEADER: lease.event_type,
        DELIVERY_ID_HEADER: str(lease.delivery_id),
        ATTEMPT_HEADER: str(lease.attempt),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(lease.secret, timestamp, lease.body),
    }


async def _refused(url: str) -> str:
    """Why the URL's host may not be called now (its name resolves to a link-local address,
    e.g. a metadata service), or "". Checked per attempt: a name can change what it points to
    after the URL was accepted."""
    host = (urlsplit(url).hostname or "").strip("[]")
    reason = webhooks.refused_host(host.lower())
    if reason:
        return reason
    try:
        ipaddress.ip_address(host)
        return ""  # a literal address, checked above
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"cannot resolve {host}: {error}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        reason = webhooks.refused_address(address)
        if reason:
            return f"{host} resolves to {address}, which {reason}"
    return ""


async def post(
    client: httpx.AsyncClient, lease: DeliveryLease, params: WebhookParams
) -> AttemptResult:
    """One attempt: POST the signed body; what came back. Never raises for the endpoint's
    faults (refused, timeout, bad answer): they are the result."""
    started = utcnow()
    clock = time.monotonic()
    status: int | None = None
    error = ""
    try:
        refused = await _refused(lease.url)
        if refused:
            error = f"refused: {refused}"
        else:
            timestamp = str(int(time.time()))
            async with asyncio.timeout(params.timeout_s):
                # Streamed and not read: an endpoint's answer body is not ours to download.
                async with client.stream(
                    "POST", lease.url, content=lease.body, headers=headers_for(lease, timestamp)
                ) as response:
                    status = response.status_code
    except TimeoutError:
        error = f"no answer within {params.timeout_s:g} s"
    except httpx.HTTPError as error_:
        error = f"{type(error_).__name__}: {error_}" if str(error_) else type(error_).__name__
    duration_ms = (time.monotonic() - clock) * 1000
    return AttemptResult(
        started_at=started, duration_ms=duration_ms, status_code=status, error=error
    )


def worker_name() -> str:
    """This process's name on the deliveries it holds (host, pid, a random part)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookWorker:
    """Sends due deliveries until :meth:`close` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        params: WebhookParams | None = None,
        *,
        name: str | None = None,
        client_id: uuid.UUID | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._params = params or WebhookParams()
        self.name = name or worker_name()
        self._client_id = client_id
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self._params.timeout_s, connect=self._params.connect_timeout_s),
            follow_redirects=False,
            transport=transport,
        )
        # An attempt in flight is abandoned on close (stop_timeout_s = 0): its lease runs out
        # and it is taken again - at least once, never lost (module docstring).
        self._loops = [
            BackgroundLoop(
                f"webhooks-{index}",
                self._claim,
                interval_s=self._params.poll_interval_s,
                stop_timeout_s=0,
            )
            for index in range(max(1, self._params.workers))
        ]
        if self._params.retention_days > 0:
            self._loops.append(
                BackgroundLoop(
                    "webhooks-retention",
                    self._retention,
                    interval_s=self._params.retention_interval_s,
                    stop_timeout_s=0,
                )
            )
        self.sent: dict[str, int] = {"delivered": 0, "retry": 0, "failed": 0, "lost": 0}

    def start(self) -> None:
        """Start the claim loops, and the retention sweep unless retention is off."""
        for loop in self._loops:
            loop.start()

    async def sweep(self) -> webhooks.Purged:
        """Delete what was delivered more than ``retention_days`` ago (module docstring)."""
        if self._params.retention_days <= 0:
            return webhooks.Purged(deliveries=0, events=0)
        before = utcnow() - dt.timedelta(days=self._params.retention_days)
        purged = await webhooks.purge_delivered(
            self._db, before, batch=max(1, self._params.retention_batch)
        )
        if purged.deliveries or purged.events:
            log.info(
                "webhook retention: deleted %d deliveries and %d events delivered before %s",
                purged.deliveries,
                purged.events,
                before.isoformat(timespec="seconds"),
            )
        return purged

    async def _retention(self) -> None:
        await self.sweep()

    async def close(self) -> None:
        """Stop the loops (an attempt in flight is abandoned: its lease runs out and it is
        taken again) and close the HTTP client."""
        await asyncio.gather(*(loop.close() for loop in self._loops))
        await self._http.aclose()

    async def _claim(self) -> float | None:
        """One claim loop's pass: the next delivery at once after one was sent, else a pause
        of ``poll_interval_s``."""
        return 0.0 if await self.run_once() else None

    async def run_once(self) -> bool:
        """Claim and send one due delivery; whether there was one."""
        params = self._params
        lease = await webhooks.claim(
            self._db,
            self.name,
            utcnow(),
            dt.timedelta(seconds=params.lease_s),
            client_id=self._client_id,
            max_attempts=params.max_attempts,
        )
        if lease is None:
            return False
        result = await post(self._http, lease, params)
        retry_in = backoff_s(lease.attempt, params.backoff_base_s, params.backoff_max_s)
        try:
            status = await webhooks.report(self._db, lease, result, utcnow(), retry_in)
        except LeaseLost as error:
            log.warning("%s", error.detail)
            self.sent["lost"] += 1
            return True
        if result.delivered:
            self.sent["delivered"] += 1
        else:
            self.sent["retry" if status == "pending" else "failed"] += 1
            log.info(
                "webhook %s to %s: attempt %d %s",
                lease.event_type,
                lease.url,
                lease.attempt,
                result.error or result.status_code,
            )
        return True
