"""The dashboard's campaigns (docs/dashboard.md, "Campaigns"; the rules in docs/campaigns.md):
the list with each campaign's progress, a form to create one with its contacts (chosen by a
filter or from a CSV file), its page with start, pause, resume and cancel, its contacts and
the outcomes of their calls. Everything goes through the service of ``/api/campaigns/``
(:mod:`callagent.store.services.campaigns`), with the same rules and messages."""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from callagent.api.pages.auth import signed_in
from callagent.api.pages.imports import FormError, csv_text
from callagent.api.pages.render import render
from callagent.api.routes.crm import IMPORT_MAX_BODY
from callagent.api.state import ApiState
from callagent.dialog.purposes import PURPOSES, check_purpose
from callagent.store.errors import Conflict, DomainError, NotFound, ValidationFailed
from callagent.store.services import agents, campaigns
from callagent.store.services import analytics as analytics_service
from callagent.store.services.campaigns import (
    CONTACT_STATES,
    CampaignCreate,
    CampaignView,
    ContactFilter,
    ContactsAdd,
    ContactsAdded,
)
from callagent.store.states import InterestLevel

PREFIX: Final = "/dashboard/campaigns"
PAGE_SIZE: Final = 25
ACTIONS: Final = {
    "start": campaigns.start_campaign,
    "pause": campaigns.pause_campaign,
    "resume": campaigns.resume_campaign,
    "cancel": campaigns.cancel_campaign,
}
"""The buttons of a campaign's page and the service function each one calls."""
BUTTONS: Final = {
    "draft": ("start", "cancel"),
    "running": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
}
"""Which buttons a campaign in each status shows (cancelled and completed ones have none)."""

Form = dict[str, Any]


def called(view: CampaignView) -> int:
    """Contacts dialled at least once so far (done, failed or being dialled), as the
    ``campaign.progress`` webhook's ``called`` (docs/campaigns.md)."""
    p = view.progress
    return p.done + p.failed + p.dialling


def _text(form: Any, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _local_time(form: Any, key: str, zone: str) -> dt.datetime | None:
    """A ``datetime-local`` field as an aware time, read in the agent's zone."""
    text = _text(form, key)
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FormError(f"{key.replace('_', ' ')}: '{text}' is not a date and time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(dt.UTC)


def _convert(data: Form, kind: type[Any]) -> Any:
    """The form's values as the API's body: the same limits and messages as the REST API."""
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as error:
        raise FormError(str(error).replace("`$.", "`")) from None


def _describe(error: DomainError) -> str:
    if isinstance(error, ValidationFailed):
        return f"{error.field.replace('_', ' ')}: {error.reason}"
    return error.detail


def _contact_filter(form: Any, zone: str) -> ContactsAdd:
    """The filter fields of a form (all optional: no condition adds every customer not on the
    do-not-call list)."""
    converted = {"yes": True, "no": False}.get(_text(form, "converted"))
    since = _text(form, "not_called_since")
    not_called_since = None
    if since:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise FormError(f"not called since: '{since}' is not a date") from None
        not_called_since = dt.datetime.combine(day, dt.time(), ZoneInfo(zone))
    return ContactsAdd(
        filter=ContactFilter(
            interest_level=_convert(_text(form, "interest_level") or None, InterestLevel | None),
            converted=converted,
            not_called_since=not_called_since,
        )
    )


def campaign_handlers(api: ApiState) -> list[Any]:
    """The campaign pages and their forms, for the dashboard's guarded router."""

    async def zone_of(client_id: uuid.UUID) -> tuple[str, str | None]:
        """The agent's time zone and name (UTC and None without an agent)."""
        try:
            agent = await agents.get_agent(api.db, client_id)
        except NotFound:
            return "UTC", None
        return agent.timezone, agent.agent_name

    def context(request: Request[Any, Any, Any], **values: Any) -> dict[str, Any]:
        who = signed_in(request)
        return {"who": who, "csrf": who.csrf_token, "path": request.url.path, **values}

    async def list_page(
        request: Request[Any, Any, Any],
        *,
        values: Form | None = None,
        error: str = "",
        status_code: int = 200,
        cursor: str | None = None,
    ) -> Response[str]:
        who = signed_in(request)
        zone, agent_name = await zone_of(who.client_id)
        try:
            page = await campaigns.list_campaigns(
                api.db, who.client_id, cursor=cursor, limit=PAGE_SIZE
            )
        except ValidationFailed:  # a spoilt cursor: the first page
            page = await campaigns.list_campaigns(api.db, who.client_id, limit=PAGE_SIZE)
        outcomes = await analytics_service.campaign_outcomes(
            api.db, who.client_id, [item.id for item in page.items]
        )
        return render(
            "campaigns.html",
            status_code=status_code,
            **context(
                request,
                page=page,
                outcomes=outcomes,
                called=called,
                zone=zone,
                agent_name=agent_name,
                purposes=[purpose.value for purpose in PURPOSES],
                levels=list(InterestLevel),
                values=collections.defaultdict(
                    str,
                    values
                    or {
                        "contacts": "filter",
                        "stagger_minutes": "1",
                        "max_concurrent": "2",
                        "max_attempts": "3",
                    },
                ),
                error=error,
            ),
        )

    async def detail_page(
        request: Request[Any, Any, Any],
        campaign_id: uuid.UUID,
        *,
        state: str | None = None,
        cursor: str | None = None,
        error: str = "",
        added: ContactsAdded | None = None,
        status_code: int = 200,
    ) -> Response[str]:
        who = signed_in(request)
        view = await campaigns.get_campaign(api.db, who.client_id, campaign_id)
        zone, agent_name = await zone_of(who.client_id)
        chosen = state if state in CONTACT_STATES else None
        try:
            contacts = await campaigns.list_contacts(
                api.db, who.client_id, campaign_id, state=chosen, cursor=cursor, limit=PAGE_SIZE
            )
        except ValidationFailed:
            contacts = await campaigns.list_contacts(
                api.db, who.client_id, campaign_id, state=chosen, limit=PAGE_SIZE
            )
        outcomes = await analytics_service.campaign_outcomes(api.db, who.client_id, [view.id])
        return render(
            "campaign.html",
            status_code=status_code,
            **context(
                request,
                campaign=view,
                called=called(view),
                outcomes=outcomes.get(view.id, {}),
                contacts=contacts,
                state=chosen or "",
                states=CONTACT_STATES,
                buttons=BUTTONS.get(view.status, ()),
                zone=zone,
                agent_name=agent_name,
                levels=list(InterestLevel),
                blank=collections.defaultdict(str, contacts="filter"),
                error=error,
                added=added,
            ),
        )

    async def add(
        request: Request[Any, Any, Any], form: Any, campaign_id: uuid.UUID, zone: str
    ) -> ContactsAdded:
        """Add the contacts a form chose, by filter or from its CSV file."""
        who = signed_in(request)
        if _text(form, "contacts") == "csv":
            text = await csv_text(form)
            return await campaigns.import_contacts(
                api.db, who.client_id, campaign_id, text, api.clock()
            )
        return await campaigns.add_contacts(
            api.db, who.client_id, campaign_id, _contact_filter(form, zone), api.clock()
        )

    @get("/campaigns", include_in_schema=False)
    async def campaigns_view(
        request: Request[Any, Any, Any], cursor: FromQuery[str | None] = None
    ) -> Response[str]:
        return await list_page(request, cursor=cursor)

    @post(
        "/campaigns",
        include_in_schema=False,
        request_max_body_size=IMPORT_MAX_BODY + 64 * 1024,  # a CSV of contacts with the form
    )
    async def campaign_create(request: Request[Any, Any, Any]) -> Response[Any]:
        who = signed_in(request)
        form = await request.form()
        values = {key: form.get(key) for key in form if key not in ("csrf_token", "file")}
        zone, _ = await zone_of(who.client_id)
        try:
            purpose = _text(form, "call_purpose")
            try:
                check_purpose(purpose)
            except ValueError as error:
                raise FormError(f"purpose: {error}") from None
            data: Form = {
                "name": _text(form, "name"),
                "call_purpose": purpose,
                "script_override": _text(form, "script_override"),
                "pacing": {
                    "stagger_minutes": _text(form, "stagger_minutes") or "1",
                    "max_concurrent": _text(form, "max_concurrent") or "2",
                },
                "retry": {"max_attempts": _text(form, "max_attempts") or "3"},
                "starts_at": _local_time(form, "starts_at", zone),
                "ends_at": _local_time(form, "ends_at", zone),
            }
            body = _convert(data, CampaignCreate)
            contacts: ContactsAdd | str = (
                await csv_text(form)
                if _text(form, "contacts") == "csv"
                else _contact_filter(form, zone)
            )
            # The campaign and its contacts in one transaction (docs/campaigns.md): contacts
            # that cannot be added (a bad header, a filter too wide) leave no draft behind.
            created, added = await campaigns.create_campaign_with_contacts(
                api.db, who.client_id, body, contacts, api.clock()
            )
        except (FormError, DomainError) as error:
            message = error.message if isinstance(error, FormError) else _describe(error)
            return await list_page(request, values=values, error=message, status_code=400)
        if added.errors:
            # Some CSV rows were refused: the campaign's page says which, once.
            return await detail_page(request, created.id, added=added)
        return Redirect(path=f"{PREFIX}/{created.id}", status_code=303)

    @get("/campaigns/{campaign_id:uuid}", include_in_schema=False)
    async def campaign_view(
        request: Request[Any, Any, Any],
        campaign_id: FromPath[uuid.UUID],
        # "state" is a name Litestar keeps for the app's state: the parameter is renamed.
        contact_state: Annotated[str | None, QueryParameter(name="state")] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Response[str]:
        return await detail_page(request, campaign_id, state=contact_state, cursor=cursor)

    def action_handler(action: str) -> Any:
        run = ACTIONS[action]

        @post(f"/campaigns/{{campaign_id:uuid}}/{action}", include_in_schema=False)
        async def campaign_action(
            request: Request[Any, Any, Any], campaign_id: FromPath[uuid.UUID]
        ) -> Response[Any]:
            who = signed_in(request)
            try:
                await run(api.db, who.client_id, campaign_id, api.clock())
            except Conflict as error:
                return await detail_page(request, campaign_id, error=error.detail, status_code=409)
            return Redirect(path=f"{PREFIX}/{campaign_id}", status_code=303)

        return campaign_action

    @post(
        "/campaigns/{campaign_id:uuid}/contacts",
        include_in_schema=False,
        request_max_body_size=IMPORT_MAX_BODY + 64 * 1024,
    )
    async def campaign_contacts(
        request: Request[Any, Any, Any], campaign_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        who = signed_in(request)
        form = await request.form()
        zone, _ = await zone_of(who.client_id)
        try:
            added = await add(request, form, campaign_id, zone)
        except FormError as error:
            return await detail_page(request, campaign_id, error=error.message, status_code=400)
        except (ValidationFailed, Conflict) as error:
            status = 409 if isinstance(error, Conflict) else 400
            return await detail_page(
                request, campaign_id, error=_describe(error), status_code=status
            )
        return await detail_page(request, campaign_id, added=added)

    return [
        campaigns_view,
        campaign_create,
        campaign_view,
        campaign_contacts,
        *(action_handler(action) for action in ACTIONS),
    ]
