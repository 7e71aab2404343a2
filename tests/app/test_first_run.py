"""The first start of ``callagent serve`` on a database without users (docs/dashboard.md, "First
start"): serve's start-up step prints a one-time link; the link's form creates the business and
its first sign-in, which then signs in; the link is refused once a user exists; a second start
prints nothing. On a database of each test's own: "no user yet" is about the whole database."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from callagent.api.app import create_app
from callagent.api.pages import FirstRun
from callagent.api.state import ApiState
from callagent.app.first_run import announce_first_run, dashboard_base
from callagent.settings import NetworkSettings
from callagent.store.db import Database
from callagent.store.models import Client
from callagent.store.services import clients, users

from helpers.dashboard_fixtures import Person, sign_in
from helpers.store_fixtures import BACKENDS, FixedClock, RecordingPlacer, own_migrated_url

NETWORK = NetworkSettings(host="0.0.0.0", http_port=8123)
PASSWORD = "a long enough password"


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest) -> str:
    return own_migrated_url(str(request.param))


def _app(url: str, first_run: FirstRun | None) -> Any:
    state = ApiState(db=Database(url), placer=RecordingPlacer(), clock=FixedClock())
    return create_app(lambda: {}, state, first_run=first_run)


async def _clients(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Client)) or 0)


def _form(token: str, **values: str) -> dict[str, str]:
    return {
        "token": token,
        "business_name": "Sunny Roofs",
        "email": "Owner@Sunny.example",
        "password": PASSWORD,
        "password_again": PASSWORD,
        **values,
    }


async def test_the_printed_link_sets_up_the_first_sign_in_once(
    fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(fresh_url)
    try:
        with caplog.at_level(logging.INFO, logger="callagent.app.first_run"):
            first_run = await announce_first_run(db, NETWORK)
        assert first_run is not None
        (link,) = re.findall(r"http://\S+", caplog.text)
        # Listening on every address: the link a browser on this machine opens.
        assert link.startswith("http://127.0.0.1:8123/dashboard/setup?token=")
        path = link.removeprefix("http://127.0.0.1:8123")
        token = path.split("token=", 1)[1]
        assert len(token) >= 43  # 256 random bits

        async with AsyncTestClient(app=_app(fresh_url, first_run)) as browser:
            login = await browser.get("/dashboard/")
            assert "Nobody can sign in yet" in login.text  # where the link is
            for wrong in ("/dashboard/setup", "/dashboard/setup?token=" + "x" * 43):
                refused = await browser.get(wrong)
                assert refused.status_code == 403, wrong
                assert "not valid" in refused.text
            refused = await browser.post("/dashboard/setup", data=_form("guessed"))
            assert refused.status_code == 403

            page = await browser.get(path)
            assert page.status_code == 200
            assert 'name="business_name"' in page.text
            assert f'name="token" value="{token}"' in page.text
            # Bad input is said on the form and writes nothing.
            short = await browser.post(
                "/dashboard/setup", data=_form(token, password="short", password_again="short")
            )
            assert short.status_code == 400
            assert "password: must be at least 10 characters" in short.text
            differ = await browser.post(
                "/dashboard/setup", data=_form(token, password_again=PASSWORD + "!")
            )
            assert differ.status_code == 400
            assert "The two passwords differ." in differ.text
            no_name = await browser.post("/dashboard/setup", data=_form(token, business_name=" "))
            assert "business name: must be 1 to 200 characters" in no_name.text
            assert await _clients(db) == 0
            assert not await users.has_users(db)

            done = await browser.post("/dashboard/setup", data=_form(token))
            assert done.status_code == 200, done.text
            assert "Sunny Roofs is set up" in done.text
            api_key = re.search(r'<code id="api-key">(ca_[^<]+)</code>', done.text)
            assert api_key
            # Signed in at once: the session cookie opens the pages.
            overview = await browser.get("/dashboard/")
            assert overview.status_code == 200
            assert "owner@sunny.example" in overview.text
            assert "Your agent is not set up yet" in overview.text
            # The key shown once is the new client's API key.
            customers = await browser.get(
                "/api/customers/", headers={"Authorization": f"Bearer {api_key.group(1)}"}
            )
            assert customers.status_code == 200, customers.text

            # The link is spent: refused, and nothing more is made.
            again = await browser.get(path)
            assert again.status_code == 403
            assert "set up already" in again.text
            again = await browser.post(
                "/dashboard/setup", data=_form(token, email="mallory@evil.example")
            )
            assert again.status_code == 403
            assert await _clients(db) == 1
            listed = await users.list_users(db)
            assert [user.email for user in listed] == ["owner@sunny.example"]

        async with AsyncTestClient(app=_app(fresh_url, None)) as other:
            # A new browser signs in with what was chosen on the form.
            owner = Person(listed[0].client_id, "owner@sunny.example", PASSWORD, api_key.group(1))
            await sign_in(other, owner)
            assert "Nobody can sign in yet" not in (await other.get("/dashboard/login")).text

        # The next start has a user: no link, nothing printed.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="callagent.app.first_run"):
            assert await announce_first_run(db, NETWORK) is None
        assert caplog.text == ""
    finally:
        await db.dispose()


async def test_a_user_made_with_the_cli_voids_the_link(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        first_run = await announce_first_run(db, NETWORK)
        assert first_run is not None
        created = await clients.create_client(db, "Made by hand")
        await users.create_user(db, created.client_id, "admin@hand.example", PASSWORD)
        async with AsyncTestClient(app=_app(fresh_url, first_run)) as browser:
            refused = await browser.get(f"/dashboard/setup?token={first_run.token}")
            assert refused.status_code == 403
            refused = await browser.post("/dashboard/setup", data=_form(first_run.token))
            assert refused.status_code == 403
            assert "Nobody can sign in yet" not in (await browser.get("/dashboard/login")).text
        assert await _clients(db) == 1
    finally:
        await db.dispose()


def test_the_link_names_an_address_a_local_browser_opens() -> None:
    assert dashboard_base(NetworkSettings()) == "http://127.0.0.1:8000"
    assert dashboard_base(NetworkSettings(host="::", http_port=80)) == "http://[::1]:80"
    assert dashboard_base(NetworkSettings(host="192.0.2.7")) == "http://192.0.2.7:8000"
    assert dashboard_base(NetworkSettings(host="fd00::7")) == "http://[fd00::7]:8000"
