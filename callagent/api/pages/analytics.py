"""The dashboard's analytics page (docs/dashboard.md, "Analytics"): calls per day, the
outcome mix, conversion and voice-to-voice latency per day as server-rendered SVG charts,
each with its summary in words and its figures in a table; and what the agent learnt and
the alerts, as the dashboard service computes them for ``GET /api/dashboard/ai-agent/``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery

from callagent.api.pages.auth import signed_in
from callagent.api.pages.charts import (
    BLUE,
    GREEN,
    PURPLE,
    VERMILLION,
    Series,
    bar_chart,
    hbar_chart,
    line_chart,
)
from callagent.api.pages.render import render
from callagent.api.state import ApiState
from callagent.store.errors import NotFound
from callagent.store.services import analytics as analytics_service
from callagent.store.services import dashboard as dashboard_service
from callagent.store.services.analytics import WINDOWS, Analytics

DEFAULT_WINDOW = 14


def day_label(day: dt.date) -> str:
    """A day as the charts' axis shows it: ``3 Mar``."""
    return f"{day.day} {day.strftime('%b')}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def charts(figures: Analytics) -> dict[str, Any]:
    """The four charts of ``figures`` with their summaries in words."""
    labels = [day_label(day.day) for day in figures.days]
    busiest = max(figures.days, key=lambda day: day.calls, default=None)
    calls_summary = (
        f"{_count(figures.calls, 'call')} in {len(figures.days)} days, {figures.reached} reached"
    )
    if busiest is not None and busiest.calls:
        calls_summary += f"; the most on {day_label(busiest.day)} ({busiest.calls})"
    outcome_items = [
        (name.replace("_", " ").capitalize(), n) for name, n in figures.outcomes.items()
    ]
    measured = [day for day in figures.days if day.turns]
    slowest = max(measured, key=lambda day: day.v2v_p95_ms or 0.0, default=None)
    latency_summary = (
        f"{_count(figures.turns, 'measured answer')}: p50 {_ms(figures.v2v_p50_ms)}, "
        f"p95 {_ms(figures.v2v_p95_ms)}"
        + (
            f"; the slowest day {day_label(slowest.day)} (p95 {_ms(slowest.v2v_p95_ms)})"
            if slowest is not None
            else ""
        )
        if figures.turns
        else "No measured answers in these days."
    )
    return {
        "calls": bar_chart(
            labels,
            [
                Series("Calls", [float(day.calls) for day in figures.days], BLUE),
                Series("Reached", [float(day.reached) for day in figures.days], VERMILLION),
            ],
            label="calls per day",
        ),
        "calls_summary": calls_summary + ".",
        "outcomes": hbar_chart(outcome_items, label="outcome mix", colour=PURPLE),
        "outcomes_summary": (
            "; ".join(f"{name} {count}" for name, count in outcome_items) + "."
            if outcome_items
            else "No outcomes in these days."
        ),
        "conversion": line_chart(
            labels,
            [
                Series(
                    "Conversion",
                    [
                        None if day.conversion_rate is None else day.conversion_rate * 100
                        for day in figures.days
                    ],
                    GREEN,
                )
            ],
            label="conversion per day",
            unit=" %",
        ),
        "conversion_summary": (
            f"{figures.converted} of {figures.reached} reached calls converted "
            f"({_pct(figures.conversion_rate)})."
            if figures.reached
            else "No reached calls in these days."
        ),
        "latency": line_chart(
            labels,
            [
                Series("p50", [day.v2v_p50_ms for day in figures.days], BLUE),
                Series("p95", [day.v2v_p95_ms for day in figures.days], VERMILLION, dashed=True),
            ],
            label="voice-to-voice latency per day",
            unit=" ms",
        ),
        "latency_summary": latency_summary + ("." if figures.turns else ""),
    }


def analytics_handlers(api: ApiState) -> list[Any]:
    """The analytics page, for the dashboard's guarded router."""

    @get("/analytics", include_in_schema=False)
    async def analytics_view(
        request: Request[Any, Any, Any], days: FromQuery[int] = DEFAULT_WINDOW
    ) -> Response[str]:
        who = signed_in(request)
        window = days if days in WINDOWS else DEFAULT_WINDOW
        context: dict[str, Any] = {
            "who": who,
            "csrf": who.csrf_token,
            "path": request.url.path,
            "windows": WINDOWS,
            "window": window,
        }
        try:
            board = await dashboard_service.dashboard(api.db, who.client_id, api.clock())
        except NotFound:
            return render("analytics.html", board=None, **context)
        figures = await analytics_service.analytics(
            api.db, who.client_id, api.clock(), days=window, timezone=board.agent.timezone
        )
        insights = {kind: [] for kind in ("best_answer", "best_call_time", "best_opener")}
        for insight in board.learning_insights:
            if insight.kind in insights:
                insights[insight.kind].append(insight)
        return render(
            "analytics.html",
            board=board,
            figures=figures,
            charts=charts(figures),
            day_label=day_label,
            ms=_ms,
            pct=_pct,
            detail=insights,
            **context,
        )

    return [analytics_view]
