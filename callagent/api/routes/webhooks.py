"""Webhook endpoints and their delivery log (docs/webhooks.md, docs/api.md "Webhooks").

Thin controllers over ``store/services/webhooks.py``: every route runs as the client of its API
key, and another client's endpoint or delivery is a 404 like a missing one.
"""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from callagent.api.errors import responses
from callagent.api.params import Limit
from callagent.api.state import ApiState
from callagent.store.models import DeliveryStatus
from callagent.store.pagination import DEFAULT_LIMIT
from callagent.store.services import webhooks
from callagent.store.services.webhooks import (
    WebhookDeliveryDetail,
    WebhookDeliveryPage,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookEndpointView,
    WebhookEndpointWithSecret,
)


class WebhookController(Controller):
    """Where the client's CRM hears about events."""

    path = "/api/webhooks"
    tags = ("webhooks",)

    @post("/", status_code=201, responses=responses(400, 401, 409))
    async def create(
        self,
        data: JSONBody[WebhookEndpointCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> WebhookEndpointWithSecret:
        """Add an endpoint; the answer holds its signing secret, shown this once."""
        return await webhooks.create_endpoint(api.db, client_id, data)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> WebhookEndpointPage:
        """The client's endpoints, newest first (secrets shown only as a hint)."""
        return await webhooks.list_endpoints(api.db, client_id, cursor=cursor, limit=limit)

    @get("/{endpoint_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        endpoint_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> WebhookEndpointView:
        """One endpoint."""
        return await webhooks.get_endpoint(api.db, client_id, endpoint_id)

    @patch("/{endpoint_id:uuid}/", responses=responses(400, 401, 404))
    async def update(
        self,
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookEndpointUpdate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> WebhookEndpointView | WebhookEndpointWithSecret:
        """Change an endpoint (a new ``secret`` is shown in the answer, this once)."""
        return await webhooks.update_endpoint(api.db, client_id, endpoint_id, data)

    @delete("/{endpoint_id:uuid}/", status_code=204, responses=responses(401, 404))
    async def remove(
        self,
        endpoint_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> None:
        """Delete an endpoint with its deliveries."""
        await webhooks.delete_endpoint(api.db, client_id, endpoint_id)


class WebhookDeliveryController(Controller):
    """The delivery log: each event to each endpoint, its attempts, redelivery."""

    path = "/api/webhook-deliveries"
    tags = ("webhooks",)

    @get("/", responses=responses(400, 401, 404))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        endpoint_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[DeliveryStatus | None] = None,
        event_type: FromQuery[str | None] = None,
        event_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> WebhookDeliveryPage:
        """Deliveries newest first, by endpoint, status, event type or event."""
        if endpoint_id is not None:
            await webhooks.endpoint_of(api.db, client_id, endpoint_id)
        return await webhooks.list_deliveries(
            api.db,
            client_id,
            endpoint_id=endpoint_id,
            status=status,
            event_type=event_type,
            event_id=event_id,
            cursor=cursor,
            limit=limit,
        )

    @get("/{delivery_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        delivery_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> WebhookDeliveryDetail:
        """One delivery: the body it sends and every attempt."""
        return await webhooks.get_delivery(api.db, client_id, delivery_id)

    @post("/{delivery_id:uuid}/redeliver/", status_code=202, responses=responses(401, 404, 409))
    async def redeliver(
        self,
        delivery_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> WebhookDeliveryDetail:
        """Send it again now, with a fresh set of attempts (same event id)."""
        return await webhooks.redeliver(api.db, client_id, delivery_id, now)
