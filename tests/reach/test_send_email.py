"""An e-mail campaign through the send engine to a real SMTP server (aiosmtpd): accepted mail arrives once,
and an address the server refuses for good (550) fails with the server's words and its contact's e-mail
consent becomes `bounced`, so no later campaign tries it."""

from __future__ import annotations

from sqlalchemy import select

from tests.channels.smtp_server import smtp_server
from tests.reach.campaign_world import ACTOR, add_contacts, make_campaign
from tutti.audience.models import Consent
from tutti.platform.db import utcnow
from tutti.reach.campaigns import engine, service
from tutti.reach.campaigns.models import Campaign, Delivery

MAIL = {"subject": "週年慶 8 折", "text": "{{ name | default('朋友') }}，週年慶全館 8 折，只到週日！"}


def test_an_email_campaign_delivers_and_marks_bounced_addresses(database, workspace_id):
    from tutti.channels import service as channels

    good = add_contacts(database, workspace_id, 2, line=False, email=True, email_status="subscribed", prefix="fan")
    dead = add_contacts(database, workspace_id, 1, line=False, email=True, email_status="subscribed", prefix="bounce")
    with smtp_server() as (host, port, recorder):
        with database.session() as db:
            channels.connect(db, workspace_id=workspace_id, kind="email", name="Mail", actor=ACTOR, credentials={},
                             config={"host": host, "port": port, "from_address": "shop@example.com", "security": "none"})
        campaign_id = make_campaign(database, workspace_id, good + dead, channels=["email"],
                                    variants=[{"name": "A", "split_percent": 100, "content": {"email": MAIL}}])
        with database.session() as db:
            campaign = db.get(Campaign, campaign_id)
            service.check_ready(db, campaign)
            campaign.status, campaign.started_at = "sending", utcnow()
        engine.run(campaign_id, database=database)
    delivered = sorted(r for m in recorder.messages for r in m.recipients)
    assert delivered == sorted(f"fan{c}@example.com" for c in good)  # each accepted address once
    with database.read_session() as db:
        rows = {d.contact_id: d for d in db.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
        assert {c: rows[c].status for c in good} == {c: "sent" for c in good}
        assert rows[dead[0]].status == "failed" and rows[dead[0]].error_code == "550"
        assert "User unknown" in rows[dead[0]].error_reason
        consents = dict(db.execute(select(Consent.contact_id, Consent.status).where(Consent.channel == "email",
                                                                                   Consent.contact_id.in_(good + dead))).all())
    assert consents == {good[0]: "subscribed", good[1]: "subscribed", dead[0]: "bounced"}
