"""The first start of ``callagent serve`` (``make run``): with no dashboard user in the database,
print a one-time set-up link instead of relying on any default password (docs/dashboard.md,
"First start")."""

from __future__ import annotations

import logging

from callagent.api.pages import FirstRun
from callagent.settings import NetworkSettings
from callagent.store.db import Database
from callagent.store.services import users

log = logging.getLogger(__name__)


def dashboard_base(network: NetworkSettings) -> str:
    """Where a browser on this machine opens the dashboard: a wildcard listen address is
    reached through loopback, an IPv6 address in brackets."""
    host = network.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{network.http_port}"


async def announce_first_run(database: Database, network: NetworkSettings) -> FirstRun | None:
    """A one-time set-up token when the database has no dashboard user, its link logged (the
    terminal of ``make run``, or the service's log); None - and nothing logged - otherwise."""
    if await users.has_users(database):
        return None
    first_run = FirstRun()
    # Whoever reads this line may create the first client and user, as with any secret a
    # service prints on its first start; it is void once a user exists or the process ends.
    log.warning(
        "No one can sign in to the dashboard yet. Open this one-time link to create your "
        "business and your sign-in: %s",
        first_run.url(dashboard_base(network)),
    )
    return first_run
