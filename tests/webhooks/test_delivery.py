"""The delivery worker against a real HTTP receiver (docs/webhooks.md): signatures, timestamps,
per-call order, retries after 500s and timeouts, redelivery, and - on PostgreSQL - two workers
that never send one delivery twice. Each test runs on SQLite and PostgreSQL; workers only take
the test's own client's deliveries (the database is shared by the suite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from callagent.store.db import Database
from callagent.store.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent
from callagent.store.services import events, webhooks
from callagent.store.services.webhooks import WebhookEndpointCreate
from callagent.webhooks.delivery import WebhookParams, WebhookWorker, backoff_s

from helpers import store_fixtures
from helpers.store_data import NOW, new_client
from helpers.webhook_receiver import Receiver, webhook_receiver

backend = store_fixtures.backend
database_url = store_fixtures.database_url
db = store_fixtures.db

FAST = WebhookParams(
    workers=3,
    poll_interval_s=0.02,
    connect_timeout_s=2.0,
    timeout_s=0.5,
    lease_s=30.0,
    backoff_base_s=0.05,
    backoff_max_s=0.2,
)


async def endpoint(db: Database, client_id: uuid.UUID, url: str) -> tuple[uuid.UUID, str]:
    created = await webhooks.create_endpoint(
        db, client_id, WebhookEndpointCreate(url=url, event_types=["*"])
    )
    return created.id, created.secret


async def emit_calls(db: Database, client_id: uuid.UUID, calls: int, per_call: int) -> None:
    """``per_call`` events for each of ``calls`` calls, interleaved, one transaction each."""
    call_ids = [uuid.uuid4() for _ in range(calls)]
    for n in range(per_call):
        for call_id in call_ids:
            async with db.write() as session:
                await events.emit(
                    session,
                    client_id,
                    "call.started",
                    {"call_id": str(call_id), "n": n},
                    ordering_key=events.call_key(call_id),
                )


async def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for ``check`` (a deadline against a hang, not a timing assertion)."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - a counter the worker's tasks move
            await asyncio.sleep(0.02)


async def drive(worker: WebhookWorker, done: Callable[[], bool]) -> None:
    """Run the worker's claims by hand (no loops) until ``done``."""
    async with asyncio.timeout(30):
        while not done():
            if not await worker.run_once():
                await asyncio.sleep(0.02)


def verify(secret: str, received: Receiver, path: str = "/hook") -> None:
    """What a CRM checks (docs/webhooks.md "Checking a delivery")."""
    for item in received.on(path):
        timestamp = item.headers["x-callagent-timestamp"]
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + item.body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(item.headers["x-callagent-signature"], f"v1={expected}")
        assert abs(time.time() - int(timestamp)) < 300
        body = item.json()
        assert item.headers["x-callagent-event-id"] == body["id"]
        assert item.headers["x-callagent-event-type"] == body["type"]


async def test_events_arrive_signed_and_in_order_per_call(db: Database) -> None:
    client_id = await new_client(db)
    with webhook_receiver() as receiver:
        _, secret = await endpoint(db, client_id, receiver.url())
        await emit_calls(db, client_id, calls=3, per_call=4)
        worker = WebhookWorker(db, FAST, client_id=client_id)
        worker.start()
        try:
            await until(lambda: worker.sent["delivered"] >= 12)
        finally:
            await worker.close()
    verify(secret, receiver)
    bodies = [item.json() for item in receiver.received]
    assert len({body["id"] for body in bodies}) == 12
    for call in {body["data"]["call_id"] for body in bodies}:
        assert [b["data"]["n"] for b in bodies if b["data"]["call_id"] == call] == [0, 1, 2, 3]
    page = await webhooks.list_deliveries(db, client_id, status=DeliveryStatus.DELIVERED)
    assert len(page.items) == 12
    assert all(item.attempts == 1 and item.last_status_code == 200 for item in page.items)


async def test_a_failing_endpoint_is_retried_and_holds_back_the_calls_later_events(
    db: Database,
) -> None:
    client_id = await new_client(db)
    with webhook_receiver() as receiver:
        receiver.script["/flaky"] = ["500", "sleep:2", "503", "200"]
        _, secret = await endpoint(db, client_id, receiver.url("/flaky"))
        await emit_calls(db, client_id, calls=1, per_call=3)
        worker = WebhookWorker(db, FAST, client_id=client_id)
        worker.start()
        try:
            await until(lambda: worker.sent["delivered"] >= 3)
        finally:
            await worker.close()
    verify(secret, receiver, "/flaky")
    got = [item.json() for item in receiver.on("/flaky")]
    # The first event is tried four times (500, no answer in time, 503, 200) before the
    # second is sent at all: a call's events never overtake each other.
    assert [body["data"]["n"] for body in got] == [0, 0, 0, 0, 1, 2]
    assert len({body["id"] for body in got[:4]}) == 1  # the same event id on every retry
    assert [item.headers["x-callagent-attempt"] for item in receiver.on("/flaky")[:4]] == [
        "1",
        "2",
        "3",
        "4",
    ]
    first = (await webhooks.list_deliveries(db, client_id, event_id=uuid.UUID(got[0]["id"]))).items
    detail = await webhooks.get_delivery(db, client_id, first[0].id)
    assert detail.status == DeliveryStatus.DELIVERED
    log = [(a.attempt, a.status_code) for a in detail.attempt_log]
    assert log == [(1, 500), (2, None), (3, 503), (4, 200)]
    assert "no answer within" in detail.attempt_log[1].error
    assert all(a.next_attempt_at is not None for a in detail.attempt_log[:3])
    assert detail.attempt_log[3].next_attempt_at is None


async def test_a_delivery_fails_after_its_attempts_and_can_be_redelivered(db: Database) -> None:
    client_id = await new_client(db)
    params = WebhookParams(**{**FAST.__dict__, "workers": 1})
    with webhook_receiver() as receiver:
        receiver.script["/down"] = ["500"]
        await endpoint(db, client_id, receiver.url("/down"))
        async with db.write() as session:
            await events.emit(session, client_id, "campaign.progress", {"n": 1}, max_attempts=2)
        worker = WebhookWorker(db, params, client_id=client_id)
        try:
            await drive(worker, lambda: worker.sent["failed"] >= 1)
            failed = (await webhooks.list_deliveries(db, client_id)).items[0]
            assert failed.status == DeliveryStatus.FAILED
            assert failed.attempts == 2
            assert failed.last_error == "the endpoint answered 500"
            receiver.script["/down"] = ["200"]
            again = await webhooks.redeliver(db, client_id, failed.id, NOW)
            assert again.status == DeliveryStatus.PENDING
            await drive(worker, lambda: worker.sent["delivered"] >= 1)
        finally:
            await worker.close()
    detail = await webhooks.get_delivery(db, client_id, failed.id)
    assert detail.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in detail.attempt_log] == [500, 500, 200]
    assert len({item.json()["id"] for item in receiver.on("/down")}) == 1


# Several nodes share PostgreSQL; SQLite is the one-node embedded mode.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_workers_never_send_one_delivery_twice(db: Database) -> None:
    client_id = await new_client(db)
    with webhook_receiver() as receiver:
        await endpoint(db, client_id, receiver.url())
        await emit_calls(db, client_id, calls=8, per_call=5)
        first = WebhookWorker(db, FAST, client_id=client_id, name="node-a")
        second = WebhookWorker(db, FAST, client_id=client_id, name="node-b")
        first.start()
        second.start()
        try:
            await until(lambda: first.sent["delivered"] + second.sent["delivered"] >= 40)
            await asyncio.sleep(0.3)  # anything sent twice would have arrived by now
        finally:
            await first.close()
            await second.close()
    ids = [item.json()["id"] for item in receiver.received]
    assert len(ids) == 40
    assert len(set(ids)) == 40
    bodies = [item.json() for item in receiver.received]
    for call in {body["data"]["call_id"] for body in bodies}:
        assert [b["data"]["n"] for b in bodies if b["data"]["call_id"] == call] == list(range(5))
    assert first.sent["delivered"] > 0
    assert second.sent["delivered"] > 0


async def test_a_retry_moves_the_calls_later_deliveries_behind_it(db: Database) -> None:
    client_id = await new_client(db)
    with webhook_receiver() as receiver:
        receiver.script["/down"] = ["500"]
        await endpoint(db, client_id, receiver.url("/down"))
        await emit_calls(db, client_id, calls=1, per_call=3)
        worker = WebhookWorker(db, WebhookParams(backoff_base_s=600), client_id=client_id)
        try:
            assert await worker.run_once()
            assert not await worker.run_once()  # the others wait for the first
        finally:
            await worker.close()
    items = sorted(
        (await webhooks.list_deliveries(db, client_id)).items, key=lambda item: item.created_at
    )
    assert [item.attempts for item in items] == [1, 0, 0]
    assert items[0].next_attempt_at is not None
    assert {item.next_attempt_at for item in items} == {items[0].next_attempt_at}


def test_the_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    low = [backoff_s(n, 15, 3600, rand=lambda: 0.0) for n in range(1, 11)]
    high = [backoff_s(n, 15, 3600, rand=lambda: 1.0) for n in range(1, 11)]
    assert high == [15, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert low == [h / 2 for h in high]


async def test_a_delivery_gets_its_tries_from_the_node_that_sends_it(db: Database) -> None:
    """``webhooks.max_attempts`` (docs/configuration.md) is the sending node's: the writer of an
    event cannot know it, so a delivery shows no tries until sent, then the node's number."""
    client_id = await new_client(db)
    params = WebhookParams(**{**FAST.__dict__, "workers": 1, "max_attempts": 3})
    with webhook_receiver() as receiver:
        receiver.script["/down"] = ["500"]
        await endpoint(db, client_id, receiver.url("/down"))
        async with db.write() as session:
            await events.emit(session, client_id, "campaign.progress", {"n": 1})
        waiting = (await webhooks.list_deliveries(db, client_id)).items[0]
        assert (waiting.status, waiting.max_attempts) == (DeliveryStatus.PENDING, None)
        worker = WebhookWorker(db, params, client_id=client_id)
        try:
            await drive(worker, lambda: worker.sent["failed"] >= 1)
            failed = await webhooks.get_delivery(db, client_id, waiting.id)
            assert (failed.status, failed.attempts, failed.max_attempts) == (
                DeliveryStatus.FAILED,
                3,
                3,
            )
            again = await webhooks.redeliver(db, client_id, waiting.id, NOW)
            assert (again.status, again.max_attempts) == (DeliveryStatus.PENDING, None)
            receiver.script["/down"] = ["200"]
            await drive(worker, lambda: worker.sent["delivered"] >= 1)
        finally:
            await worker.close()
    detail = await webhooks.get_delivery(db, client_id, waiting.id)
    assert (detail.status, detail.attempts, detail.max_attempts) == (
        DeliveryStatus.DELIVERED,
        4,
        6,
    )


async def test_retention_deletes_what_was_delivered_long_ago_and_nothing_else(
    db: Database,
) -> None:
    """docs/webhooks.md "Retention": delivered deliveries older than the retention go, in
    batches, with their attempt log, then events with no delivery left; a failed or pending
    delivery and its event stay however old, and so does what was delivered recently."""
    client_id = await new_client(db)
    params = WebhookParams(**{**FAST.__dict__, "workers": 1, "max_attempts": 1})
    with webhook_receiver() as receiver:
        receiver.script["/down"] = ["500"]
        await endpoint(db, client_id, receiver.url())
        down, _ = await endpoint(db, client_id, receiver.url("/down"))
        await emit_calls(db, client_id, calls=5, per_call=1)  # 5 events x 2 endpoints
        worker = WebhookWorker(db, params, client_id=client_id)
        try:
            await drive(worker, lambda: worker.sent["delivered"] + worker.sent["failed"] >= 10)
        finally:
            await worker.close()
    async with db.write() as session:
        await events.emit(session, client_id, "campaign.progress", {"n": "pending"})
        ids = list(
            await session.scalars(
                select(WebhookEvent.id)
                .where(WebhookEvent.client_id == client_id)
                .order_by(WebhookEvent.seq)
            )
        )
    recent_event = ids[0]
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    async with db.write() as session:
        # Everything but the first event's deliveries happened long ago.
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.client_id == client_id, WebhookEvent.id != recent_event)
            .values(created_at=long_ago)
        )
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.client_id == client_id,
                WebhookDelivery.event_id != recent_event,
                WebhookDelivery.status == DeliveryStatus.DELIVERED,
            )
            .values(delivered_at=long_ago)
        )
    worker = WebhookWorker(db, WebhookParams(retention_days=30, retention_batch=2))
    try:
        assert (await webhooks.purge_delivered(db, long_ago)).deliveries == 0  # not older
        purged = await webhooks.purge_delivered(db, long_ago + dt.timedelta(days=1), batch=3)
        assert purged.deliveries == 4  # the 4 old ones to the endpoint that answered
        assert purged.events == 0  # each still has its failed delivery
        async with db.write() as session:  # the failed ones are dropped by hand
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.client_id == client_id,
                    WebhookDelivery.endpoint_id == down,
                    WebhookDelivery.event_id != recent_event,
                    WebhookDelivery.status == DeliveryStatus.FAILED,
                )
                .values(status=DeliveryStatus.DELIVERED, delivered_at=long_ago)
            )
        purged = await worker.sweep()  # retention_days=30 from now, two rows at a time
    finally:
        await worker.close()
    assert purged.deliveries >= 4
    assert purged.events >= 4
    left = await webhooks.list_deliveries(db, client_id)
    assert sorted((item.event_id == recent_event, item.status) for item in left.items) == [
        (False, DeliveryStatus.PENDING),  # the campaign event nobody sent: never deleted
        (False, DeliveryStatus.PENDING),
        (True, DeliveryStatus.DELIVERED),
        (True, DeliveryStatus.FAILED),
    ]
    async with db.read() as session:
        kept = set(
            await session.scalars(
                select(WebhookEvent.id).where(WebhookEvent.client_id == client_id)
            )
        )
        logged = set(
            await session.scalars(
                select(WebhookAttempt.delivery_id).where(
                    WebhookAttempt.delivery_id.in_([item.id for item in left.items])
                )
            )
        )
    assert kept == {recent_event, ids[-1]}
    assert len(logged) == 2  # the two that were tried keep their log
