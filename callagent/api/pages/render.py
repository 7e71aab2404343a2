"""Server-rendered HTML: Jinja2 templates shipped in the package (docs/dashboard.md, "How the
pages are made"). Autoescaping is on for every template: customer names, transcripts and
business info are other people's text."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.enums import MediaType

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _when(value: dt.datetime | str | None, zone: str = "UTC") -> str:
    """A time (or an ISO 8601 text, as JSON columns hold them) as a person reads it, in the
    agent's zone."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    try:
        local = value.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local = value.astimezone(dt.UTC)
    return local.strftime("%a %d %b %Y, %H:%M %Z")


def _local_input(value: dt.datetime | None, zone: str = "UTC") -> str:
    """A time as ``<input type=datetime-local>`` wants it, in the agent's zone."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def _label(value: Any) -> str:
    """An enum value or snake_case key as words: ``callback_requested`` → ``Callback requested``."""
    text = str(getattr(value, "value", value) if value is not None else "—")
    return text.replace("_", " ").capitalize()


def _pretty(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False, sort_keys=True)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %" if value <= 1 else f"{value:.0f} %"


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    when=_when, local_input=_local_input, label=_label, pretty=_pretty, percent=_percent
)


def render(template: str, status_code: int = 200, **context: Any) -> Response[str]:
    """The page ``template`` filled with ``context``, as an HTML response that no cache keeps
    (pages show one client's data)."""
    html = _environment.get_template(template).render(**context)
    return Response(
        html,
        status_code=status_code,
        media_type=MediaType.HTML,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            # Everything is served by this app: no script, style or image from elsewhere.
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                "form-action 'self'; base-uri 'none'"
            ),
        },
    )
