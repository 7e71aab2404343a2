"""The web dashboard (docs/dashboard.md): server-rendered pages under ``/dashboard`` for the
people of one client, signed in with a password. Every page reads and writes through the same
store services as the REST API, scoped to the signed-in user's client.
"""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from callagent.api.pages.analytics import analytics_handlers
from callagent.api.pages.auth import (
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfRefused,
    DashboardConfig,
    LoginRequired,
    LoginThrottle,
    check_csrf,
    cookie_secure,
    new_login_secret,
    session_guard,
    set_session_cookie,
    signed_in,
)
from callagent.api.pages.campaigns import campaign_handlers
from callagent.api.pages.first_run import FirstRun, first_run_handlers
from callagent.api.pages.imports import import_handlers
from callagent.api.pages.live import live_handlers
from callagent.api.pages.phone import BrowserPhone, phone_handlers
from callagent.api.pages.recording import recording_handlers
from callagent.api.pages.render import STATIC, render
from callagent.api.recordings import recording_path
from callagent.api.routes.agent import place
from callagent.api.state import ApiState
from callagent.dialog.profile_builder import BusinessInfoError, check_business_info
from callagent.dialog.purposes import PURPOSES, check_purpose
from callagent.store import training as rubric
from callagent.store.errors import (
    CallRefused,
    Conflict,
    DomainError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from callagent.store.schemas import (
    AgentSetup,
    AgentUpdate,
    AgentView,
    CallbackReschedule,
    CustomerUpdate,
    StartCall,
    TrainingCreate,
)
from callagent.store.services import agents, callbacks, calls, customer_search, customers, users
from callagent.store.services import dashboard as dashboard_service
from callagent.store.states import (
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    InterestLevel,
    PersonalityType,
    TrainingType,
)

__all__ = ["BrowserPhone", "DashboardConfig", "FirstRun", "dashboard_router"]

PREFIX = "/dashboard"
PAGE_SIZE = 25
LEVELS = (20, 80)
"""The training levels that matter to a user: calls may start at 20 %, the agent is ready at
80 % (docs/api.md, "Training")."""

Form = dict[str, Any]


class _FormError(Exception):
    """Bad input on a form: shown next to the form, nothing written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _enum(kind: type[Any], value: str | None) -> Any:
    """``value`` as a member of ``kind``; None for empty or unknown (a filter then shows all)."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _json_object(name: str, text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text.encode())
    except msgspec.DecodeError as error:
        raise _FormError(f"{name}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise _FormError(f'{name}: must be a JSON object, like {{"company_name": "Acme"}}')
    return value


def _convert(data: Form, kind: type[Any]) -> Any:
    """The form's values as the API's schema: the same limits and messages as the REST API."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        raise _FormError(str(error).replace("`$.", "`")) from None


def _describe(error: DomainError) -> str:
    if isinstance(error, ValidationFailed):
        return f"{error.field.replace('_', ' ')}: {error.reason}"
    return error.detail


async def _form(request: Request[Any, Any, Any]) -> Form:
    form = await request.form()
    return {key: form.get(key) for key in form if key != CSRF_FIELD}


def dashboard_router(
    api: ApiState,
    config: DashboardConfig | None = None,
    *,
    phone: BrowserPhone | None = None,
    first_run: FirstRun | None = None,
) -> list[Any]:
    """The dashboard's routes and its static files, to mount on the app. With ``phone``
    (a node with voice models), "Talk to your agent" calls the agent from the browser. With
    ``first_run`` (no user yet), its one-time link opens the set-up form."""
    config = config or DashboardConfig()
    throttle = LoginThrottle(config.max_failures, config.window_s)

    def base(request: Request[Any, Any, Any], **context: Any) -> dict[str, Any]:
        who = signed_in(request)
        return {"who": who, "csrf": who.csrf_token, "path": request.url.path, **context}

    async def agent_or_none(client_id: uuid.UUID) -> AgentView | None:
        try:
            return await agents.get_agent(api.db, client_id)
        except NotFound:
            return None

    def zone(agent: AgentView | None) -> str:
        return agent.timezone if agent is not None else "UTC"

    # --- login ----------------------------------------------------------------------------------

    def login_page(
        request: Request[Any, Any, Any],
        error: str = "",
        email: str = "",
        status: int = 200,
        setup_pending: bool = False,
    ) -> Response[str]:
        secret = new_login_secret()
        response = render(
            "login.html",
            status_code=status,
            error=error,
            email=email,
            login_secret=secret,
            setup_pending=setup_pending,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            secret,
            path=f"{COOKIE_PATH}/login",
            httponly=True,
            samesite="strict",
            secure=cookie_secure(config, request),
            max_age=3600,
        )
        return response

    @get("/login", opt={"public": True}, include_in_schema=False)
    async def login_form(request: Request[Any, Any, Any]) -> Response[str]:
        # A first start with no user: say where the set-up link is (docs/dashboard.md).
        pending = first_run is not None and await first_run.pending(api)
        return login_page(request, setup_pending=pending)

    @post("/login", opt={"public": True}, include_in_schema=False)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        email = str(form.get("email") or "")[:320]
        password = str(form.get("password") or "")
        secret = str(form.get("login_secret") or "")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not secret or not expected or not users.same_secret(secret, expected):
            return login_page(
                request,
                "The form expired or came from another site; please try again.",
                email,
                403,
            )
        remote = f"addr:{request.client.host if request.client else '?'}"
        account = f"email:{users.normalize_email(email)}"
        if throttle.blocked(account, remote):
            return login_page(
                request,
                "Too many failed sign-ins. Wait 15 minutes and try again.",
                email,
                429,
            )
        now = api.clock()
        try:
            opened = await users.sign_in(api.db, email, password, now)
        except Unauthorized:
            throttle.failed(account, remote)
            return login_page(request, "Wrong e-mail or password.", email, 401)
        throttle.succeeded(account)
        response: Response[Any] = Redirect(path=f"{PREFIX}/", status_code=303)
        set_session_cookie(response, opened, config, request, now)
        response.delete_cookie(LOGIN_COOKIE, path=f"{COOKIE_PATH}/login")
        return response

    @post("/logout", include_in_schema=False)
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        await users.sign_out(api.db, request.cookies.get(SESSION_COOKIE, ""))
        response: Response[Any] = Redirect(path=f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    # --- overview -------------------------------------------------------------------------------

    @get("/", include_in_schema=False)
    async def overview(request: Request[Any, Any, Any]) -> Response[str]:
        who = signed_in(request)
        try:
            board = await dashboard_service.dashboard(api.db, who.client_id, api.clock())
        except NotFound:
            return render("overview.html", **base(request, board=None, zone="UTC"))
        return render("overview.html", **base(request, board=board, zone=board.agent.timezone))

    # --- agent setup ----------------------------------------------------------------------------

    def agent_page(
        request: Request[Any, Any, Any],
        agent: AgentView | None,
        values: Form | None = None,
        error: str = "",
        saved: bool = False,
    ) -> Response[str]:
        if values is None:
            values = (
                {
                    "agent_name": agent.agent_name,
                    "personality_type": agent.personality_type.value,
                    "voice_model": agent.voice_model,
                    "working_hours_start": agent.working_hours_start,
                    "working_hours_end": agent.working_hours_end,
                    "timezone": agent.timezone,
                    "business_info": msgspec.json.format(
                        msgspec.json.encode(agent.business_info), indent=2
                    ).decode(),
                    "sales_goals": msgspec.json.format(
                        msgspec.json.encode(agent.sales_goals), indent=2
                    ).decode(),
                    "phone_numbers": "\n".join(agent.phone_numbers),
                }
                if agent is not None
                else {
                    "agent_name": "",
                    "personality_type": "professional",
                    "voice_model": "",
                    "working_hours_start": "09:00",
                    "working_hours_end": "17:00",
                    "timezone": "UTC",
                    "business_info": "{}",
                    "sales_goals": "{}",
                    "phone_numbers": "",
                }
            )
        return render(
            "agent.html",
            status_code=400 if error else 200,
            **base(
                request,
                agent=agent,
                values=collections.defaultdict(str, values),
                error=error,
                saved=saved,
                personalities=list(PersonalityType),
            ),
        )

    @get("/agent", include_in_schema=False)
    async def agent_view(
        request: Request[Any, Any, Any], saved: FromQuery[bool] = False
    ) -> Response[str]:
        who = signed_in(request)
        return agent_page(request, await agent_or_none(who.client_id), saved=saved)

    @post("/agent", include_in_schema=False)
    async def agent_save(request: Request[Any, Any, Any]) -> Response[Any]:
        who = signed_in(request)
        agent = await agent_or_none(who.client_id)
        values = await _form(request)
        try:
            data: Form = {
                "agent_name": str(values.get("agent_name") or "").strip(),
                "personality_type": values.get("personality_type") or "professional",
                "voice_model": str(values.get("voice_model") or "").strip(),
                "working_hours_start": values.get("working_hours_start") or "",
                "working_hours_end": values.get("working_hours_end") or "",
                "timezone": str(values.get("timezone") or "").strip(),
                "business_info": _json_object(
                    "business info", str(values.get("business_info") or "")
                ),
                "sales_goals": _json_object("sales goals", str(values.get("sales_goals") or "")),
                "phone_numbers": _lines(str(values.get("phone_numbers") or "")),
            }
            # An empty time or zone keeps the default (setup) or the current value (update).
            for key in ("working_hours_start", "working_hours_end", "timezone"):
                if not data[key]:
                    del data[key]
            try:
                check_business_info(data["business_info"])
            except BusinessInfoError as error:
                raise ValidationFailed(error.field, error.reason) from None
            if agent is None:
                await agents.setup_agent(
                    api.db, who.client_id, _convert(data, AgentSetup), voices=api.voices
                )
            else:
                await agents.update_agent(
                    api.db, who.client_id, _convert(data, AgentUpdate), voices=api.voices
                )
        except _FormError as error:
            return agent_page(request, agent, values, error.message)
        except DomainError as error:
            return agent_page(request, agent, values, _describe(error))
        return Redirect(path=f"{PREFIX}/agent?saved=true", status_code=303)

    # --- training -------------------------------------------------------------------------------

    async def training_page(
        request: Request[Any, Any, Any], values: Form | None = None, error: str = ""
    ) -> Response[str]:
        who = signed_in(request)
        try:
            trainings = await agents.list_trainings(api.db, who.client_id)
        except NotFound:
            trainings = None
        agent = await agent_or_none(who.client_id) if trainings is not None else None
        return render(
            "training.html",
            status_code=400 if error else 200,
            **base(
                request,
                trainings=trainings,
                zone=zone(agent),
                values=collections.defaultdict(str, values or {"training_type": "script"}),
                error=error,
                levels=LEVELS,
                types=list(TrainingType),
                next_steps=rubric.next_steps(trainings.coverage) if trainings else [],
            ),
        )

    @get("/training", include_in_schema=False)
    async def training_view(request: Request[Any, Any, Any]) -> Response[str]:
        return await training_page(request)

    @post("/training", include_in_schema=False)
    async def training_add(request: Request[Any, Any, Any]) -> Response[Any]:
        who = signed_in(request)
        values = await _form(request)
        try:
            objections: dict[str, str] = {}
            for line in _lines(str(values.get("objection_responses") or "")):
                objection, bar, answer = line.partition("|")
                if not bar or not objection.strip() or not answer.strip():
                    raise _FormError(
                        f"objection answers: write each as 'objection | answer', not '{line}'"
                    )
                objections[objection.strip()] = answer.strip()
            data: Form = {
                "training_type": values.get("training_type") or "",
                "training_content": str(values.get("training_content") or ""),
                "product_details": {
                    "name": str(values.get("product_name") or ""),
                    "description": str(values.get("product_description") or ""),
                    "features": _lines(str(values.get("product_features") or "")),
                    "pricing": str(values.get("product_pricing") or ""),
                    "benefits": _lines(str(values.get("product_benefits") or "")),
                },
                "objection_responses": objections,
                "sales_techniques": _lines(str(values.get("sales_techniques") or "")),
                "client_instructions": str(values.get("client_instructions") or ""),
            }
            await agents.add_training(api.db, who.client_id, _convert(data, TrainingCreate))
        except _FormError as error:
            return await training_page(request, values, error.message)
        except DomainError as error:
            return await training_page(request, values, _describe(error))
        return Redirect(path=f"{PREFIX}/training", status_code=303)

    # --- calls ----------------------------------------------------------------------------------

    async def calls_page(
        request: Request[Any, Any, Any],
        *,
        status: str | None = None,
        outcome: str | None = None,
        call_type: str | None = None,
        cursor: str | None = None,
        values: Form | None = None,
        error: str = "",
        status_code: int = 200,
    ) -> Response[str]:
        who = signed_in(request)
        agent = await agent_or_none(who.client_id)
        filters = {
            "status": _enum(CallStatus, status),
            "outcome": _enum(CallOutcome, outcome),
            "call_type": _enum(CallType, call_type),
        }
        try:
            page = await calls.list_calls(
                api.db, who.client_id, cursor=cursor, limit=PAGE_SIZE, **filters
            )
        except ValidationFailed:  # a stale or edited cursor: start over
            page = await calls.list_calls(api.db, who.client_id, limit=PAGE_SIZE, **filters)
        return render(
            "calls.html",
            status_code=status_code,
            **base(
                request,
                agent=agent,
                zone=zone(agent),
                page=page,
                filters={k: (v.value if v else "") for k, v in filters.items()},
                statuses=list(CallStatus),
                outcomes=list(CallOutcome),
                call_types=list(CallType),
                purposes=[p.value for p in PURPOSES],
                values=collections.defaultdict(str, values or {}),
                error=error,
            ),
        )

    @get("/calls", include_in_schema=False)
    async def calls_view(
        request: Request[Any, Any, Any],
        status: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        call_type: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        phone: FromQuery[str | None] = None,
    ) -> Response[str]:
        return await calls_page(
            request,
            status=status,
            outcome=outcome,
            call_type=call_type,
            cursor=cursor,
            values={"phone_number": phone or ""},
        )

    @post("/calls", include_in_schema=False)
    async def call_start(request: Request[Any, Any, Any]) -> Response[Any]:
        """Start-call from the page: the same steps as ``POST /api/agents/ai/start-call/``."""
        who = signed_in(request)
        values = await _form(request)
        try:
            data = _convert(
                {
                    "phone_number": str(values.get("phone_number") or "").strip(),
                    "purpose": str(values.get("purpose") or "").strip(),
                    "ignore_working_hours": values.get("ignore_working_hours") == "on",
                },
                StartCall,
            )
            try:
                check_purpose(data.purpose)
            except ValueError as error:
                raise ValidationFailed("purpose", str(error)) from None
            # The node's call count (docs/telephony.md "Capacity"), as start-call reserves it.
            admission = getattr(api, "admission", None)
            slot = admission.reserve() if admission is not None else None
            try:
                prepared = await calls.prepare_call(
                    api.db, who.client_id, data, api.clock(), rule=api.dial_rule
                )
            except BaseException:
                if slot is not None:
                    slot.cancel()
                raise
            if slot is not None:
                slot.bind(prepared.call_id)
            result = await place(api.placer, prepared)
            if slot is not None and not result.placed:
                slot.cancel()
            await calls.record_placement(
                api.db,
                who.client_id,
                prepared.call_id,
                placed=result.placed,
                reason=result.reason,
                telephony_call_id=result.telephony_call_id,
                now=api.clock(),
            )
        except _FormError as error:
            return await calls_page(request, values=values, error=error.message, status_code=400)
        except CallRefused as error:
            return await calls_page(request, values=values, error=error.detail, status_code=409)
        except DomainError as error:
            # "at_capacity": this node carries as many calls as it may (docs/telephony.md
            # "Capacity"), a 503 like the API's.
            busy = error.code == "at_capacity"
            return await calls_page(
                request, values=values, error=_describe(error), status_code=503 if busy else 400
            )
        return Redirect(path=f"{PREFIX}/calls/{prepared.call_id}", status_code=303)

    @get("/calls/{call_id:uuid}", include_in_schema=False)
    async def call_detail(
        request: Request[Any, Any, Any], call_id: FromPath[uuid.UUID]
    ) -> Response[str]:
        who = signed_in(request)
        call = await calls.get_call(api.db, who.client_id, call_id)
        agent = await agent_or_none(who.client_id)
        measured = call.latency.get("turns", []) if isinstance(call.latency, dict) else []
        return render(
            "call.html",
            **base(
                request,
                call=call,
                zone=zone(agent),
                latency_turns=measured,
                barge_in_stops=call.latency.get("barge_in_stop_ms", [])
                if isinstance(call.latency, dict)
                else [],
                # The player only for a file this node can serve (recording on, not deleted).
                has_recording=recording_path(api.recordings, call.recording_ref) is not None,
            ),
        )

    # --- customers ------------------------------------------------------------------------------

    @get("/customers", include_in_schema=False)
    async def customers_view(
        request: Request[Any, Any, Any],
        q: FromQuery[str] = "",
        interest_level: FromQuery[str | None] = None,
        do_not_call: FromQuery[str | None] = None,
        converted: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Response[str]:
        who = signed_in(request)
        flag = {"yes": True, "no": False}
        filters = {
            "interest_level": _enum(InterestLevel, interest_level),
            "do_not_call": flag.get(do_not_call or ""),
            "converted": flag.get(converted or ""),
        }
        next_cursor = None
        if q.strip():
            found = await customer_search.search_customers(api.db, who.client_id, q)
            items = [
                c
                for c in found
                if all(value is None or getattr(c, key) == value for key, value in filters.items())
            ]
        else:
            try:
                page = await customers.list_customers(
                    api.db, who.client_id, cursor=cursor, limit=PAGE_SIZE, **filters
                )
            except ValidationFailed:
                page = await customers.list_customers(
                    api.db, who.client_id, limit=PAGE_SIZE, **filters
                )
            items, next_cursor = page.items, page.next_cursor
        agent = await agent_or_none(who.client_id)
        return render(
            "customers.html",
            **base(
                request,
                items=items,
                next_cursor=next_cursor,
                q=q,
                filters={
                    "interest_level": interest_level or "",
                    "do_not_call": do_not_call or "",
                    "converted": converted or "",
                },
                levels=list(InterestLevel),
                zone=zone(agent),
            ),
        )

    async def customer_page(
        request: Request[Any, Any, Any],
        customer_id: uuid.UUID,
        values: Form | None = None,
        error: str = "",
        saved: bool = False,
    ) -> Response[str]:
        who = signed_in(request)
        customer = await customers.get_customer(api.db, who.client_id, customer_id)
        history = await calls.list_calls(api.db, who.client_id, customer_id=customer_id, limit=10)
        agent = await agent_or_none(who.client_id)
        return render(
            "customer.html",
            status_code=400 if error else 200,
            **base(
                request,
                customer=customer,
                values=collections.defaultdict(str, values)
                if values
                else {
                    "name": customer.name,
                    "phone_number": customer.phone_number,
                    "email": customer.email,
                    "company": customer.company,
                    "timezone": customer.timezone or "",
                    "interest_level": customer.interest_level.value,
                    "call_preference_time": customer.call_preference_time,
                    "conversation_notes": customer.conversation_notes,
                },
                error=error,
                saved=saved,
                levels=list(InterestLevel),
                calls=history.items,
                zone=zone(agent),
            ),
        )

    @get("/customers/{customer_id:uuid}", include_in_schema=False)
    async def customer_view(
        request: Request[Any, Any, Any],
        customer_id: FromPath[uuid.UUID],
        saved: FromQuery[bool] = False,
    ) -> Response[str]:
        return await customer_page(request, customer_id, saved=saved)

    @post("/customers/{customer_id:uuid}", include_in_schema=False)
    async def customer_save(
        request: Request[Any, Any, Any], customer_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        who = signed_in(request)
        values = await _form(request)
        data: Form = {
            key: str(values.get(key) or "").strip()
            for key in (
                "name",
                "phone_number",
                "email",
                "company",
                "interest_level",
                "call_preference_time",
                "conversation_notes",
            )
        }
        data["timezone"] = str(values.get("timezone") or "").strip() or None
        try:
            await customers.update_customer(
                api.db, who.client_id, customer_id, _convert(data, CustomerUpdate)
            )
        except _FormError as error:
            return await customer_page(request, customer_id, values, error.message)
        except (ValidationFailed, Conflict) as error:
            return await customer_page(request, customer_id, values, _describe(error))
        return Redirect(path=f"{PREFIX}/customers/{customer_id}?saved=true", status_code=303)

    @post("/customers/{customer_id:uuid}/do-not-call", include_in_schema=False)
    async def customer_do_not_call(
        request: Request[Any, Any, Any], customer_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        who = signed_in(request)
        values = await _form(request)
        await customers.mark_do_not_call(
            api.db, who.client_id, customer_id, values.get("do_not_call") != "false"
        )
        return Redirect(path=f"{PREFIX}/customers/{customer_id}?saved=true", status_code=303)

    # --- callbacks ------------------------------------------------------------------------------

    async def callbacks_page(
        request: Request[Any, Any, Any],
        status: str | None,
        cursor: str | None = None,
        error: str = "",
        status_code: int = 200,
    ) -> Response[str]:
        who = signed_in(request)
        agent = await agent_or_none(who.client_id)
        chosen = _enum(CallbackStatus, status) if status != "all" else None
        if status is None:
            chosen = CallbackStatus.SCHEDULED  # the queue: what is still to be called
        now = api.clock()
        try:
            page = await callbacks.list_callbacks(
                api.db, who.client_id, now, status=chosen, cursor=cursor, limit=PAGE_SIZE
            )
        except ValidationFailed:
            page = await callbacks.list_callbacks(
                api.db, who.client_id, now, status=chosen, limit=PAGE_SIZE
            )
        return render(
            "callbacks.html",
            status_code=status_code,
            **base(
                request,
                page=page,
                zone=zone(agent),
                status=chosen.value if chosen else "all",
                statuses=list(CallbackStatus),
                error=error,
            ),
        )

    @get("/callbacks", include_in_schema=False)
    async def callbacks_view(
        request: Request[Any, Any, Any],
        status: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Response[str]:
        return await callbacks_page(request, status, cursor)

    @post("/callbacks/{callback_id:uuid}/reschedule", include_in_schema=False)
    async def callback_reschedule(
        request: Request[Any, Any, Any], callback_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        who = signed_in(request)
        values = await _form(request)
        agent = await agent_or_none(who.client_id)
        text = str(values.get("scheduled_at") or "")
        try:
            try:
                local = dt.datetime.fromisoformat(text)
            except ValueError:
                raise _FormError(f"new time: '{text}' is not a date and time") from None
            if local.tzinfo is None:
                local = local.replace(tzinfo=ZoneInfo(zone(agent)))
            await callbacks.reschedule_callback(
                api.db,
                who.client_id,
                callback_id,
                CallbackReschedule(scheduled_at=local.astimezone(dt.UTC)),
                api.clock(),
            )
        except _FormError as error:
            return await callbacks_page(request, None, error=error.message, status_code=400)
        except (ValidationFailed, Conflict) as error:
            return await callbacks_page(request, None, error=_describe(error), status_code=400)
        return Redirect(path=f"{PREFIX}/callbacks", status_code=303)

    @post("/callbacks/{callback_id:uuid}/cancel", include_in_schema=False)
    async def callback_cancel(
        request: Request[Any, Any, Any], callback_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        who = signed_in(request)
        try:
            await callbacks.cancel_callback(api.db, who.client_id, callback_id, api.clock())
        except Conflict as error:
            return await callbacks_page(request, None, error=_describe(error), status_code=409)
        return Redirect(path=f"{PREFIX}/callbacks", status_code=303)

    # --- errors ---------------------------------------------------------------------------------

    def to_login(request: Request[Any, Any, Any], _error: Exception) -> Response[Any]:
        response: Response[Any] = Redirect(path=f"{PREFIX}/login", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    def csrf_refused(_request: Request[Any, Any, Any], _error: Exception) -> Response[Any]:
        return render(
            "error.html",
            status_code=403,
            title="Form refused",
            message=(
                "This form did not carry its security token (it may be from another site, or "
                "older than your session). Nothing was changed. Go back, reload the page and "
                "try again."
            ),
        )

    def not_found(_request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        return render(
            "error.html",
            status_code=404,
            title="Not found",
            message=error.detail if isinstance(error, DomainError) else "No such page.",
        )

    pages = Router(
        path=PREFIX,
        route_handlers=[
            login_form,
            login,
            logout,
            overview,
            agent_view,
            agent_save,
            training_view,
            training_add,
            calls_view,
            call_start,
            call_detail,
            customers_view,
            customer_save,
            customer_view,
            customer_do_not_call,
            callbacks_view,
            callback_reschedule,
            callback_cancel,
            *phone_handlers(api, phone),
            *campaign_handlers(api),
            *import_handlers(api),
            *analytics_handlers(api),
            *live_handlers(api),
            *recording_handlers(api),
            *first_run_handlers(api, config, first_run),
        ],
        guards=[session_guard(api)],
        before_request=check_csrf,
        exception_handlers={
            LoginRequired: to_login,
            CsrfRefused: csrf_refused,
            NotFound: not_found,
        },
        include_in_schema=False,
    )

    @get("/", include_in_schema=False)
    async def home() -> Redirect:
        # http://127.0.0.1:8000/ is where a business opens its agent (docs/dashboard.md).
        return Redirect(path=f"{PREFIX}/", status_code=303)

    static = create_static_files_router(
        path=f"{PREFIX}/static",
        directories=[STATIC],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600),
        opt={"public": True},
    )
    return [home, pages, static]
