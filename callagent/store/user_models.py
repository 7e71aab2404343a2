"""The tables of the web dashboard's logins (docs/dashboard.md, "Login"): people who sign in to
one client's pages, and their sessions.

They sit apart from :mod:`callagent.store.models` only because they are the dashboard's: they
share its ``Base`` (one metadata, one Alembic history) and its rules - every row belongs to one
client, and relationships are never loaded by accident.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from callagent.store.ids import new_id
from callagent.store.models import Base, UtcDateTime, utcnow


class DashboardUser(Base):
    """A person who signs in to the dashboard of one client. The e-mail address is the login
    name, unique across the installation (the login form asks for no client). Only an argon2id
    hash of the password is stored."""

    __tablename__ = "dashboard_users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, default=None)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, default=None)


class DashboardSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database signs nobody in. ``csrf_token`` is the secret every form of this
    session must send back. Sessions live in the database, not in a node's memory: any node
    serves any browser, and logging out (or disabling the user) ends them everywhere."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
