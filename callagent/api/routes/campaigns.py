"""Campaigns (docs/campaigns.md): many outbound calls with one purpose, paced, retried, and
dialled by the scheduler under its dial-time rules.

``/api/campaigns/``: create, list, read, change, delete; add contacts (by id, by filter, by
CSV); start, pause, resume, cancel; progress. ``POST /calls/api/calls/trigger_campaign_calls/``
starts (or resumes) one with the purpose and stagger of the run. Every route runs as the
client of its API key: another client's campaign is a 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from callagent.api.errors import responses
from callagent.api.params import Limit
from callagent.api.routes.crm import IMPORT_MAX_BODY
from callagent.api.state import ApiState
from callagent.dialog.purposes import check_purpose
from callagent.store.errors import ValidationFailed
from callagent.store.pagination import DEFAULT_LIMIT
from callagent.store.services import campaigns
from callagent.store.services.campaigns import (
    CampaignCreate,
    CampaignPage,
    CampaignUpdate,
    CampaignView,
    ContactPage,
    ContactsAdd,
    ContactsAdded,
    Progress,
    TriggerCampaign,
)


def _purpose(text: str | None) -> None:
    """A misspelt purpose name is a 400, not a silent sales campaign (docs/dialog.md)."""
    if text is None:
        return
    try:
        check_purpose(text)
    except ValueError as error:
        raise ValidationFailed("call_purpose", str(error)) from None


class CampaignController(Controller):
    """Campaigns and their contacts."""

    path = "/api/campaigns"
    tags = ("campaigns",)

    @post("/", status_code=201, responses=responses(400, 401))
    async def create(
        self,
        data: JSONBody[CampaignCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """A new campaign, a draft until it is started."""
        _purpose(data.call_purpose)
        return await campaigns.create_campaign(api.db, client_id, data, now)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        status: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CampaignPage:
        """Campaigns, newest first, with their progress."""
        return await campaigns.list_campaigns(
            api.db, client_id, status=status, cursor=cursor, limit=limit
        )

    @get("/{campaign_id:uuid}/", responses=responses(401, 404))
    async def read(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CampaignView:
        """One campaign and its progress."""
        return await campaigns.get_campaign(api.db, client_id, campaign_id)

    @patch("/{campaign_id:uuid}/", responses=responses(400, 401, 404, 409))
    async def update(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[CampaignUpdate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Change a campaign that has not finished."""
        _purpose(data.call_purpose if isinstance(data.call_purpose, str) else None)
        return await campaigns.update_campaign(api.db, client_id, campaign_id, data, now)

    @delete("/{campaign_id:uuid}/", status_code=204, responses=responses(401, 404, 409))
    async def remove(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> None:
        """Delete a campaign that is not running, and its contacts."""
        await campaigns.delete_campaign(api.db, client_id, campaign_id)

    @post("/{campaign_id:uuid}/contacts/", status_code=200, responses=responses(400, 401, 404, 409))
    async def add_contacts(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[ContactsAdd],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> ContactsAdded:
        """Add customers by ``customer_ids`` or by ``filter`` (interest level, converted,
        not called since)."""
        return await campaigns.add_contacts(api.db, client_id, campaign_id, data, now)

    @post(
        "/{campaign_id:uuid}/contacts/import/",
        status_code=200,
        request_max_body_size=IMPORT_MAX_BODY,
        responses=responses(400, 401, 404, 409, 413),
    )
    async def import_contacts(
        self,
        campaign_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> ContactsAdded:
        """Add contacts from CSV (columns: phone_number or customer_id, optional name); bad
        rows are reported (row, field, reason) and skipped."""
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed("file", "not UTF-8 text") from None
        return await campaigns.import_contacts(api.db, client_id, campaign_id, text, now)

    @get("/{campaign_id:uuid}/contacts/", responses=responses(400, 401, 404))
    async def contacts(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        # "state" is a name Litestar keeps for the app's state: the parameter is renamed.
        contact_state: Annotated[str | None, QueryParameter(name="state")] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> ContactPage:
        """The campaign's contacts in calling order, optionally of one ``state``."""
        return await campaigns.list_contacts(
            api.db, client_id, campaign_id, state=contact_state, cursor=cursor, limit=limit
        )

    @get("/{campaign_id:uuid}/progress/", responses=responses(401, 404))
    async def progress(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> Progress:
        """Contacts by state (pending, dialling, done, failed, suppressed, cancelled), answered,
        converted."""
        return await campaigns.get_progress(api.db, client_id, campaign_id)

    @post("/{campaign_id:uuid}/start/", status_code=200, responses=responses(401, 404, 409))
    async def start(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Start: each pending contact gets a due row, ``stagger_minutes`` apart."""
        return await campaigns.start_campaign(api.db, client_id, campaign_id, now)

    @post("/{campaign_id:uuid}/pause/", status_code=200, responses=responses(401, 404, 409))
    async def pause(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Pause: nothing more is dialled; live calls go on."""
        return await campaigns.pause_campaign(api.db, client_id, campaign_id, now)

    @post("/{campaign_id:uuid}/resume/", status_code=200, responses=responses(401, 404, 409))
    async def resume(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Resume a paused campaign with the contacts left."""
        return await campaigns.resume_campaign(api.db, client_id, campaign_id, now)

    @post("/{campaign_id:uuid}/cancel/", status_code=200, responses=responses(401, 404, 409))
    async def cancel(
        self,
        campaign_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Cancel for good: contacts not yet dialled are not called."""
        return await campaigns.cancel_campaign(api.db, client_id, campaign_id, now)


class CampaignTriggerController(Controller):
    """The integration contract's campaign trigger (docs/api.md)."""

    path = "/calls/api/calls"
    tags = ("campaigns",)

    @post("/trigger_campaign_calls/", status_code=200, responses=responses(400, 401, 404, 409))
    async def trigger_campaign_calls(
        self,
        data: JSONBody[TriggerCampaign],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CampaignView:
        """Start (or resume) a campaign with this run's ``call_purpose`` and
        ``stagger_minutes``; on a running campaign, schedules the contacts added since."""
        _purpose(data.call_purpose)
        return await campaigns.trigger(api.db, client_id, data, now)
