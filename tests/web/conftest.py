"""Fixtures of the web UI tests: a seeded workspace (owner, contacts with zh-TW names, tags, events,
orders, consent), a signed-in TestClient, and a live uvicorn server for the Playwright tests."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import serving
from tutti.platform.audit import Actor

PASSWORD = "correct horse battery"
OWNER_EMAIL = "owner@example.com"
LINE_UID = "U" + "1" * 32


@dataclass
class Seed:
    workspace_id: int
    owner_id: int
    email: str = OWNER_EMAIL
    password: str = PASSWORD
    contacts: dict[str, int] = field(default_factory=dict)  # name -> id


def seed_workspace(database, *, name: str = "茶語商行", email: str = OWNER_EMAIL, role: str = "owner") -> Seed:
    """A workspace with an owner and three contacts with identities, tags, events, orders and consent."""
    from tutti.audience import consent, contacts, events, tags
    from tutti.audience.models import Order, OrderLine
    from tutti.platform import workspaces
    from tutti.platform.db import utcnow

    actor = Actor.cli()
    now = utcnow()
    with database.session() as db:
        workspace = workspaces.create_workspace(db, name=name)
        user = workspaces.create_user(db, email=email, password=PASSWORD, name="陳店長")
        workspaces.add_member(db, workspace_id=workspace.id, user_id=user.id, role=role, actor=actor)
        seed = Seed(workspace_id=workspace.id, owner_id=user.id, email=email)
        people = [
            ("王小明", {"external_id": "C001", "email": "ming@example.com", "phone": "0912-345-678", "line_uid": LINE_UID}, "台北市"),
            ("林美玲", {"external_id": "C002", "email": "meiling@example.com", "phone": "0922333444"}, "台中市"),
            ("陳大文", {"external_id": "C003", "email": "dawen@example.com"}, "高雄市"),
        ]
        for person, identities, city in people:
            contact, _ = contacts.upsert(db, workspace_id=workspace.id, identities=identities, profile={"name": person, "city": city},
                                         attributes={"tier": "gold" if person == "王小明" else "silver"}, actor=actor)
            seed.contacts[person] = contact.id
        ming, mei = seed.contacts["王小明"], seed.contacts["林美玲"]
        tags.apply(db, workspace_id=workspace.id, contact_ids=[ming, mei], tag="VIP")
        tags.apply(db, workspace_id=workspace.id, contact_ids=[ming], tag="愛喝烏龍")
        consent.set_consent(db, workspace_id=workspace.id, contact_id=ming, channel="line", status="subscribed", source="line_follow")
        consent.set_consent(db, workspace_id=workspace.id, contact_id=ming, channel="email", status="subscribed", source="import")
        consent.set_consent(db, workspace_id=workspace.id, contact_id=mei, channel="email", status="unsubscribed", source="link")
        events.record(db, workspace_id=workspace.id, events=[
            events.NewEvent(contact_id=ming, name="Product Viewed", occurred_at=now - timedelta(days=1, hours=i), properties={"sku": f"TEA-00{i}", "name": "凍頂烏龍"})
            for i in range(3)
        ])
        for external_id, contact_id, total, days_ago in [("O-1001", ming, 1280, 3), ("O-1002", ming, 560, 10), ("O-0901", mei, 900, 45)]:
            order = Order(workspace_id=workspace.id, contact_id=contact_id, external_id=external_id, total=total, status="completed",
                          placed_at=now - timedelta(days=days_ago), currency="TWD")
            db.add(order)
            db.flush()
            db.add(OrderLine(workspace_id=workspace.id, order_id=order.id, sku="TEA-001", name="凍頂烏龍茶 150g", quantity=2, unit_price=total / 2))
    return seed


@pytest.fixture
def seeded(database) -> Seed:
    return seed_workspace(database)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client, email: str = OWNER_EMAIL, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text), "next": "/"},
                       follow_redirects=False)


@pytest.fixture
def owner_client(client, seeded):
    """A TestClient signed in as the seeded workspace's owner; `client.csrf` holds the session's token."""
    answer = sign_in(client)
    assert answer.status_code == 303, answer.text
    client.csrf = csrf_of(client.get("/settings/tags").text)
    return client


# --- live server for the browser ------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    seed: Seed


@pytest.fixture
def live_server(settings, database):
    """uvicorn in a background thread on a free port, over a migrated and seeded database (both engines)."""
    from tutti.web.app import create_app

    seed = seed_workspace(database)
    with serving(create_app(settings, run_worker=False)) as url:
        yield LiveServer(url=url, seed=seed)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
SCREENSHOTS = Path(os.environ.get("TUTTI_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900}, locale="zh-TW")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in_browser(page, live_server, password=None, *, wait=False):
    page.goto("/login")
    page.fill("input[name=email]", live_server.seed.email)
    page.fill("input[name=password]", password or live_server.seed.password)
    page.click("button[type=submit]")
    if wait:
        page.wait_for_url(live_server.url + "/")


@pytest.fixture
def client_factory(app):
    """More browsers on the same app, each with its own cookies."""
    from fastapi.testclient import TestClient

    made = []

    def make():
        test_client = TestClient(app)
        test_client.__enter__()
        made.append(test_client)
        return test_client

    yield make
    for test_client in made:
        test_client.__exit__(None, None, None)
