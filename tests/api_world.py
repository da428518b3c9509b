"""A workspace full of data for API-wide tests (tenancy, roles): one of everything the API can reach.

Every name in a seeded workspace carries its marker (e.g. "bbbmark"), so "B's data leaked into A's
answer" is simply "B's marker appears in the response text". One e-mail is shared by every workspace
on purpose: identities are unique per workspace, never across them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from tutti.audience import commerce, consent, contacts, events, tags
from tutti.platform import migrate, workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import Database, utcnow
from tutti.platform.models import Workspace

ACTOR = Actor.cli()

SHARED_EMAIL = "shared@example.com"


@dataclass
class Seed:
    database: Database
    marker: str
    workspace_id: int
    key: str  # an admin key
    contact: int  # holds SHARED_EMAIL, a tag, an attribute, consent, an event and an order
    other: int
    merged: int  # merged into `contact`: its id still answers with `contact`
    tag: str
    attribute: str
    key_id: int  # a second API key, to revoke
    own_email: str
    import_id: int | None = None
    keys: dict[str, str] = field(default_factory=dict)  # role -> key
    counter: int = 0
    parts: dict[str, object] = field(default_factory=dict)  # what each part's SEEDERS added (ids by name)

    def fresh_contact(self, **identities) -> int:
        self.counter += 1
        with self.database.session() as db:
            contact, _ = contacts.upsert(db, workspace_id=self.workspace_id, actor=ACTOR,
                                         identities=identities or {"email": f"{self.marker}-fresh{self.counter}@example.com"},
                                         profile={"name": f"{self.marker} fresh {self.counter}"})
            return contact.id

    def fresh_tag(self) -> str:
        self.counter += 1
        name = f"{self.marker}-fresh-tag-{self.counter}"
        with self.database.session() as db:
            tags.create_tag(db, workspace_id=self.workspace_id, name=name, actor=ACTOR)
        return name

    def fresh_key_id(self) -> int:
        self.counter += 1
        with self.database.session() as db:
            return workspaces.create_api_key(db, workspace_id=self.workspace_id, name=f"{self.marker} spare {self.counter}",
                                             role="analyst", actor=ACTOR).record.id

    def fresh_import(self) -> int:
        from tutti.audience import imports

        self.counter += 1
        with self.database.session() as db:
            content = MEMBERS_CSV.format(marker=f"{self.marker}{self.counter}").encode()
            return imports.create_import(db, workspace_id=self.workspace_id, kind="members", filename="members.csv",
                                         content=content, actor=ACTOR).id

    def key_for(self, role: str) -> str:
        if role not in self.keys:
            with self.database.session() as db:
                self.keys[role] = workspaces.create_api_key(db, workspace_id=self.workspace_id, name=f"{self.marker} {role}",
                                                            role=role, actor=ACTOR).key
        return self.keys[role]


# The kinds of tenancy case (see tests/test_tenancy.py); here so each part's api_cases can use them.
Build = Callable[[Seed, Seed], "str | tuple[str, dict | None]"]
Check = Callable[[object, Seed, Seed], None]


@dataclass
class Case:
    kind: str  # foreign, listing, write
    builds: tuple[Build, ...]
    check: Check | None = None
    files: bool = False  # multipart upload instead of JSON


def foreign(*builds: Build) -> Case:
    return Case("foreign", builds)


def listing(*builds: Build, check: Check | None = None) -> Case:
    return Case("listing", builds, check)


def write(build: Build, check: Check | None = None, files: bool = False) -> Case:
    return Case("write", (build,), check, files)


MEMBERS_CSV = "email,name\n{marker}-imported@example.com,{marker} imported\n"


# Each part's tests/<part>/api_cases.py appends a seeder: (database, seed) -> None that adds one of each
# of its things to the workspace and notes their ids in seed.parts.
SEEDERS: list = []


def seed(database: Database, marker: str) -> Seed:
    import tests.part_cases  # noqa: F401 - registers the parts' seeders

    made = _seed_audience(database, marker)
    for seeder in SEEDERS:
        seeder(database, made)
    return made


def _seed_audience(database: Database, marker: str) -> Seed:
    with database.session() as db:
        workspace = workspaces.create_workspace(db, name=f"{marker} shop")
        wid = workspace.id
        admin = workspaces.create_api_key(db, workspace_id=wid, name=f"{marker} admin key", role="admin", actor=ACTOR)
        spare = workspaces.create_api_key(db, workspace_id=wid, name=f"{marker} spare key", role="marketer", actor=ACTOR)
        user = workspaces.create_user(db, email=f"{marker}-owner@example.com", password=None, name=f"{marker} owner")
        workspaces.add_member(db, workspace_id=wid, user_id=user.id, role="owner", actor=ACTOR)
        workspaces.invite(db, workspace_id=wid, email=f"{marker}-invited@example.com", role="agent", actor=ACTOR)
        attribute = f"{marker}_level"
        person, _ = contacts.upsert(db, workspace_id=wid, actor=ACTOR, identities={"email": SHARED_EMAIL, "external_id": f"{marker}-C1"},
                                    profile={"name": f"{marker} person"}, attributes={attribute: f"{marker} gold"})
        other, _ = contacts.upsert(db, workspace_id=wid, actor=ACTOR, identities={"email": f"{marker}-other@example.com"},
                                   profile={"name": f"{marker} other"})
        visitor, _ = contacts.upsert(db, workspace_id=wid, actor=ACTOR, identities={"anonymous_id": f"{marker}-visitor"})
        contacts.merge(db, workspace_id=wid, winner_id=person.id, loser_id=visitor.id, reason="manual", actor=ACTOR)
        tag = f"{marker}-tag"
        tags.create_tag(db, workspace_id=wid, name=tag, description=f"{marker} description", actor=ACTOR)
        tags.apply(db, workspace_id=wid, contact_ids=[person.id, other.id], tag=tag)
        consent.set_consent(db, workspace_id=wid, contact_id=person.id, channel="email", status="subscribed", source=marker)
        events.record(db, workspace_id=wid, events=[events.NewEvent(
            contact_id=person.id, name=f"{marker} Viewed", occurred_at=utcnow() - timedelta(hours=1), properties={"m": marker},
            message_id=f"{marker}-event-1")])
        commerce.record_orders(db, workspace_id=wid, orders=[commerce.NewOrder(
            contact_id=person.id, external_id=f"{marker}-SO-1", placed_at=utcnow() - timedelta(days=1), total=500.0,
            lines=[commerce.NewOrderLine(sku=f"{marker}-SKU", name=f"{marker} tea", quantity=1, unit_price=500.0)])])
        import_id = None
        try:
            from tutti.audience import imports
        except ImportError:
            imports = None
        if imports is not None:
            job = imports.create_import(db, workspace_id=wid, kind="members", filename=f"{marker}.csv",
                                        content=MEMBERS_CSV.format(marker=marker).encode(), actor=ACTOR)
            import_id = job.id
        return Seed(database=database, marker=marker, workspace_id=wid, key=admin.key, contact=person.id, other=other.id,
                    merged=visitor.id, tag=tag, attribute=attribute, key_id=spare.record.id, own_email=f"{marker}-other@example.com",
                    import_id=import_id, keys={"admin": admin.key})


def snapshot(database: Database, workspace_id: int, *, ignore: tuple[str, ...] = ()) -> dict[str, list]:
    """Every row of the workspace, in every table, as comparable text."""
    result: dict[str, list] = {}
    with database.session() as db:
        for table in migrate.all_metadata().sorted_tables:
            if table.name == Workspace.__tablename__:
                query = select(table).where(table.c.id == workspace_id)
            elif "workspace_id" in table.c:
                query = select(table).where(table.c.workspace_id == workspace_id)
            else:
                continue
            columns = [c.name for c in table.columns if f"{table.name}.{c.name}" not in ignore]
            rows = [tuple(repr(row._mapping[c]) for c in columns) for row in db.execute(query)]
            result[table.name] = sorted(rows)
    return result


def api_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route under /api/v1, including those inside included routers."""
    try:
        from fastapi.routing import iter_route_contexts

        routes = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI before included routers were kept apart
        routes = list(app.routes)
    found = set()
    for route in routes:
        path = getattr(route, "path", None) or ""
        if path.startswith("/api/v1"):
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, path))
    return sorted(found)
