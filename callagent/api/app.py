"""The HTTP side of callagent: the Litestar application (docs/api.md).

``create_app(status)`` alone serves ``GET /health`` (the embedded mode without a database).
Given an :class:`ApiState` it also serves the REST API, and ``/health`` shows its details to
callers with an API key: the integration contract's routes under
``/api/agents/ai/`` and ``/api/dashboard/ai-agent/``, the CRM resources under ``/api/``, the
OpenAPI document at ``/schema/openapi.json`` and Swagger UI at ``/schema/swagger``.

Swagger UI's scripts and styles come from the ``swagger-ui-bundle-v2`` package and are served
by this app under ``/schema/assets/``: the API docs page must render on a machine with no
internet (air-gapped installs), so nothing is loaded from a CDN.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import swagger_ui_bundle
from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from callagent.api.auth import api_key_guard, authenticate, provide_client_id
from callagent.api.errors import EXCEPTION_HANDLERS
from callagent.api.pages import BrowserPhone, FirstRun, dashboard_router
from callagent.api.recordings import RecordingController
from callagent.api.request import ApiRequest
from callagent.api.routes.agent import AgentController
from callagent.api.routes.campaigns import CampaignController, CampaignTriggerController
from callagent.api.routes.crm import (
    CallbackController,
    CallController,
    CustomerController,
    NoteController,
    OpportunityController,
)
from callagent.api.routes.dashboard import DashboardController
from callagent.api.routes.triggers import (
    AutonomousCallController,
    WebFormTriggerController,
    web_form_router,
)
from callagent.api.routes.webhooks import WebhookController, WebhookDeliveryController
from callagent.api.state import ApiState
from callagent.telephony.metrics import CONTENT_TYPE, CallMetrics

#: JSON bodies larger than this are refused with 413 (the CSV import allows more).
MAX_BODY_BYTES = 1024 * 1024

API_VERSION = "1.0.0"

SWAGGER_ASSETS = "/schema/assets"
"""Where Swagger UI's own files are served from (the installed package's copy)."""


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document: bearer auth declared, Swagger UI and raw JSON served."""
    return OpenAPIConfig(
        title="callagent REST API",
        version=API_VERSION,
        description=(
            "Clients, agents, training, customers, calls and callbacks. "
            "Authenticate with `Authorization: Bearer <api key>` "
            "(`callagent clients create NAME` prints one)."
        ),
        path="/schema",
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http", scheme="bearer", description="a callagent API key"
                )
            }
        ),
        render_plugins=[
            JsonRenderPlugin(),
            SwaggerRenderPlugin(
                js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
                # Litestar's default favicon is on a CDN too.
                favicon=f"<link rel='icon' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
            ),
        ],
    )


def api_router(state: ApiState) -> Router:
    """Every ``/api`` route, each running as the client of its API key."""

    def provide_state() -> ApiState:
        return state

    def provide_now() -> dt.datetime:
        return state.clock()

    return Router(
        path="/",
        route_handlers=[
            AgentController,
            DashboardController,
            CustomerController,
            NoteController,
            CallController,
            RecordingController,
            CallbackController,
            OpportunityController,
            WebhookController,
            WebhookDeliveryController,
            AutonomousCallController,
            WebFormTriggerController,
            CampaignController,
            CampaignTriggerController,
        ],
        dependencies={
            "api": Provide(provide_state, sync_to_thread=False),
            "now": Provide(provide_now, sync_to_thread=False),
            "client_id": Provide(provide_client_id),
        },
        # Before the body is read: an unauthenticated request is a 401, whatever its body.
        guards=[api_key_guard(state)],
        security=[{"BearerAuth": []}],
    )


def create_app(
    status: Callable[[], dict[str, Any]],
    api: ApiState | None = None,
    *,
    metrics: CallMetrics | None = None,
    phone: BrowserPhone | None = None,
    first_run: FirstRun | None = None,
) -> Litestar:
    """A Litestar app serving ``GET /health``; with ``api``, the REST API.

    ``/health`` tells an anonymous caller (a load balancer's probe) only ``{"status": "ok"}``;
    ``status()`` - models, calls, AMI, addresses - only goes to a caller with a valid API key
    (an invalid one is a 401), and never without ``api``, where no key can be checked.
    With ``metrics`` and ``api``, ``GET /metrics`` serves them in Prometheus' text format to a
    caller with a valid API key, like ``/health``'s details (docs/metrics.md).
    With ``phone`` the dashboard's "Talk to your agent" page calls the agent from the browser
    (docs/dashboard.md). With ``first_run`` (a database without users) its one-time link
    opens the dashboard's set-up form (docs/dashboard.md, "First start").
    """

    @get("/health", include_in_schema=False)
    async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
        if api is None or "authorization" not in request.headers:
            return {"status": "ok"}
        await authenticate(api, request)
        return {"status": "ok", **status()}

    handlers: list[Any] = [health]
    if api is not None and metrics is not None:

        @get("/metrics", include_in_schema=False)
        async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
            # Call volume and latency are the tenants' business: a key, never anonymous.
            await authenticate(api, request)
            return Response(metrics.exposition(), media_type=CONTENT_TYPE)

        handlers.append(metrics_route)
    if api is not None:
        handlers.append(api_router(api))
        # Signed by the form's secret, not an API key (docs/api.md "Web-form trigger").
        handlers.append(web_form_router(api))
        handlers.append(
            create_static_files_router(
                path=SWAGGER_ASSETS,
                directories=[swagger_ui_bundle.swagger_ui_path],
                include_in_schema=False,
                # The bundle never changes for an installed version: let browsers keep it.
                cache_control=CacheControlHeader(max_age=86_400),
            )
        )
        # The web dashboard (docs/dashboard.md): its own login and cookie, never an API key.
        handlers.extend(dashboard_router(api, phone=phone, first_run=first_run))
    return Litestar(
        route_handlers=handlers,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=ApiRequest,
        openapi_config=openapi_config() if api is not None else None,
        request_max_body_size=MAX_BODY_BYTES,
        # Logging is the command's (callagent/app/logs.py): Litestar's default config would
        # replace the root handlers at start-up, and every later line would lose its call id.
        logging_config=None,
        # Close the pool in the loop that opened it (the server's, or a test client's).
        on_shutdown=[api.db.dispose] if api is not None else [],
    )
