"""Channels: connect, validation, encryption at rest, update, delete, default channel."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tutti.channels import service
from tutti.platform.audit import Actor
from tutti.platform.errors import InvalidInput, NotFound

ACTOR = Actor.cli()
TOKEN = "line-access-token-0123456789abcdef"


def _line(db, workspace_id, name="LINE OA", **config):
    return service.connect(db, workspace_id=workspace_id, kind="line", name=name, actor=ACTOR,
                           config={"channel_id": "1650000000", **config},
                           credentials={"channel_secret": "s3cr3t-channel-secret", "access_token": TOKEN})


def test_credentials_are_encrypted_at_rest_and_masked(database, workspace_id):
    with database.session() as db:
        channel = _line(db, workspace_id)
        channel_id = channel.id
    with database.session() as db:
        raw = db.execute(text("SELECT credentials FROM channel WHERE id = :id"), {"id": channel_id}).scalar_one()
        assert TOKEN not in raw and "s3cr3t" not in raw
        channel = service.get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
        assert service.secrets_of(channel) == {"channel_secret": "s3cr3t-channel-secret", "access_token": TOKEN}
        shown = service.describe(channel)
        assert TOKEN not in str(shown) and shown["credentials"]["access_token"] == "••••cdef"
        assert shown["config"]["api_base_url"] == "https://api.line.me"
        assert shown["config"]["multicast_rate"] == 200.0


def test_validation_names_the_field(database, workspace_id):
    with database.session() as db:
        with pytest.raises(InvalidInput) as error:
            service.connect(db, workspace_id=workspace_id, kind="line", name="x", actor=ACTOR, credentials={"channel_secret": "a"})
        assert error.value.field == "credentials.access_token"
        with pytest.raises(InvalidInput) as error:
            service.connect(db, workspace_id=workspace_id, kind="fax", name="x", actor=ACTOR)
        assert error.value.field == "kind"
        with pytest.raises(InvalidInput) as error:
            service.connect(db, workspace_id=workspace_id, kind="email", name="x", actor=ACTOR,
                            config={"host": "smtp", "from_address": "not-an-address"})
        assert error.value.field == "config.from_address"
        with pytest.raises(InvalidInput) as error:
            service.connect(db, workspace_id=workspace_id, kind="sms", name="x", actor=ACTOR, config={"url": "ftp://x"})
        assert error.value.field == "config.url"
        with pytest.raises(InvalidInput) as error:
            _line(db, workspace_id, push_rate=-1)
        assert error.value.field == "config.push_rate"
        with pytest.raises(InvalidInput) as error:
            _line(db, workspace_id, colour="blue")
        assert error.value.field == "config.colour"


def test_update_keeps_secrets_left_empty_and_delete(database, workspace_id):
    with database.session() as db:
        channel_id = _line(db, workspace_id).id
    with database.session() as db:
        service.update_channel(db, workspace_id=workspace_id, channel_id=channel_id, actor=ACTOR, name="Renamed",
                               config={"api_base_url": "http://127.0.0.1:8001/"}, credentials={"access_token": "", "channel_secret": "new-secret"})
    with database.session() as db:
        channel = service.get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
        assert channel.name == "Renamed"
        assert channel.config["api_base_url"] == "http://127.0.0.1:8001"
        assert channel.config["channel_id"] == "1650000000"  # untouched settings stay
        assert service.secrets_of(channel) == {"channel_secret": "new-secret", "access_token": TOKEN}
        service.delete_channel(db, workspace_id=workspace_id, channel_id=channel_id, actor=ACTOR)
    with database.session() as db, pytest.raises(NotFound):
        service.get_channel(db, workspace_id=workspace_id, channel_id=channel_id)


def test_tenancy_and_default_channel(database, make_workspace):
    a, b = make_workspace("A")[0], make_workspace("B")[0]
    with database.session() as db:
        first = _line(db, a, name="first").id
        second = _line(db, a, name="second").id
        other = _line(db, b, name="other").id
        webhook = service.connect(db, workspace_id=a, kind="webhook", name="hook", actor=ACTOR, config={"url": "https://example.com/h"})
        assert service.secrets_of(webhook)["signing_secret"].startswith("whsec_")
    with database.session() as db:
        with pytest.raises(NotFound):
            service.get_channel(db, workspace_id=a, channel_id=other)
        assert service.default_channel(db, workspace_id=a, kind="line").id == first
        service.update_channel(db, workspace_id=a, channel_id=first, actor=ACTOR, status="disabled")
        assert service.default_channel(db, workspace_id=a, kind="line").id == second
        assert service.default_channel(db, workspace_id=a, kind="sms") is None
        assert [c.name for c in service.list_channels(db, workspace_id=a)] == ["first", "second", "hook"]
        assert [c.name for c in service.list_channels(db, workspace_id=a, kind="webhook")] == ["hook"]
