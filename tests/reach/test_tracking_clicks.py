"""Clicks, opens and unsubscribes through the public addresses, on both engines."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from tests.reach.tracking_world import make_contacts, send_campaign
from tutti.audience.models import Consent, Event
from tutti.reach.templates import service as templates
from tutti.reach.tracking import codes, links
from tutti.reach.tracking.models import Click, Link, MessageOpen

LINE = {"messages": [{"type": "text", "text": "{{ name }}：春季新品 https://shop.example/spring?ref=line 快來看"},
                     {"type": "template", "altText": "x", "template": {"type": "buttons", "text": "t", "actions": [
                         {"type": "uri", "label": "買", "uri": "https://shop.example/buy"}]}}]}


def _prepared(database, sent, variant="A", payload=None):
    with database.session() as db:
        return links.prepare(db, workspace_id=sent.workspace_id, campaign_id=sent.campaign_id,
                             variant_id=sent.variants[variant], payload=payload or templates.compile_content("line", LINE).skeleton)


def test_prepare_stores_each_link_once(database, workspace_id):
    people = make_contacts(database, workspace_id, 2)
    sent = send_campaign(database, workspace_id, variants={"A": people}, holdout=[])
    first = _prepared(database, sent)
    again = _prepared(database, sent)
    assert first.positions == again.positions == {"https://shop.example/spring?ref=line": 0, "https://shop.example/buy": 1}
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Link)) == 2


def test_a_click_redirects_with_utm_records_the_click_and_shows_on_the_timeline(client, database, workspace_id):
    people = make_contacts(database, workspace_id, 2)
    sent = send_campaign(database, workspace_id, variants={"A": people}, holdout=[])
    rewriter = _prepared(database, sent)
    renderer = templates.compile_content("line", LINE)
    payload = rewriter.rewrite(renderer.render({"name": "Mei"}), sent.deliveries[people[0]])
    short = re.search(r"/l/(\w+)", payload["messages"][0]["text"]).group(1)
    for _ in range(2):  # every click counts (total), the person once (unique)
        response = client.get(f"/l/{short}", follow_redirects=False)
        assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    query = parse_qs(target.query)
    assert target.netloc == "shop.example" and target.path == "/spring"
    assert query["ref"] == ["line"] and query["utm_source"] == ["tutti"] and query["utm_medium"] == ["line"]
    assert query["utm_campaign"] == [f"spring-sale-{sent.campaign_id}"] and query["utm_content"] == ["A"]
    with database.session() as db:
        clicks = db.scalars(select(Click)).all()
        assert len(clicks) == 2 and {c.contact_id for c in clicks} == {people[0]}
        assert clicks[0].campaign_id == sent.campaign_id and clicks[0].variant_id == sent.variants["A"]
        seen = db.scalars(select(Event).where(Event.name == "Campaign Link Clicked")).all()
        assert len(seen) == 2 and seen[0].contact_id == people[0]
        assert seen[0].properties["url"] == "https://shop.example/spring?ref=line"


def test_bad_codes_are_a_404_page_never_a_500(client, database, workspace_id):
    people = make_contacts(database, workspace_id, 1)
    sent = send_campaign(database, workspace_id, variants={"A": people}, holdout=[])
    _prepared(database, sent)
    good = codes.link_code(sent.deliveries[people[0]], 0)
    for code in ["x", good[:-1] + ("A" if good[-1] != "A" else "B"), codes.link_code(999999, 0),
                 codes.link_code(sent.deliveries[people[0]], 9), "%00", "a" * 300, "😀"]:
        response = client.get(f"/l/{code}", follow_redirects=False)
        assert response.status_code == 404, code
    assert client.get(f"/l/{good}", follow_redirects=False).status_code == 302
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Click)) == 1


def test_the_open_pixel_records_an_open(client, database, workspace_id):
    people = make_contacts(database, workspace_id, 1)
    sent = send_campaign(database, workspace_id, variants={"A": people}, holdout=[], channel="email")
    response = client.get(f"/o/{codes.open_code(sent.deliveries[people[0]])}.gif")
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert client.get("/o/nonsense.gif").status_code == 404
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(MessageOpen)) == 1


def test_unsubscribe_asks_first_then_sets_email_consent(client, database, workspace_id):
    person = make_contacts(database, workspace_id, 1)[0]
    token = codes.unsubscribe_token(workspace_id, person)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    with database.session() as db:
        assert db.get(Consent, (person, "email")) is None  # a scanner opening the link changes nothing
    done = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and 'data-testid="unsubscribed"' in done.text
    with database.session() as db:
        assert db.get(Consent, (person, "email")).status == "unsubscribed"
    assert client.post(f"/u/{codes.unsubscribe_token(workspace_id + 1, person)}").status_code == 404
    assert client.get("/u/garbage").status_code == 404


def test_load_contexts_is_set_based_and_leaves_empty_values_out(database, workspace_id):
    from tests.reach.tracking_world import order
    from tutti.audience import tags
    from tutti.platform.db import utcnow

    people = make_contacts(database, workspace_id, 3)
    with database.session() as db:
        tags.apply(db, workspace_id=workspace_id, contact_ids=people[:2], tag="VIP")
    order(database, workspace_id, people[0], utcnow(), 1280.0, external_id="SO-9")
    with database.session() as db:
        from sqlalchemy import update

        from tutti.audience.models import Contact
        db.execute(update(Contact).where(Contact.id == people[2]).values(name=None, attributes={"points": 5}))
        statements = []
        from sqlalchemy import event
        listener = lambda *args: statements.append(args[2])
        event.listen(db.get_bind(), "before_cursor_execute", listener)
        contexts = templates.load_contexts(db, workspace_id=workspace_id, contact_ids=people + [10**9])
        event.remove(db.get_bind(), "before_cursor_execute", listener)
    assert len(statements) <= 6
    assert set(contexts) == set(people)
    first = contexts[people[0]]
    assert first["name"] == "p 0" and first["email"] == "p0@example.com" and first["tags"] == ["VIP"]
    assert first["last_order"]["external_id"] == "SO-9" and first["last_order"]["total"] == 1280.0
    assert codes.read_unsubscribe_token(first["unsubscribe_url"].rsplit("/", 1)[1]) == (workspace_id, people[0])
    third = contexts[people[2]]
    assert "name" not in third and third["points"] == 5 and third["tags"] == [] and "last_order" not in third
    rendered = templates.compile_content("sms", {"text": "{{ name | default('朋友') }} {{ points }}"}).render(third)
    assert rendered["text"] == "朋友 5"


def test_clicks_follow_a_merged_person(client, database, workspace_id):
    from tutti.audience import contacts
    from tutti.platform.audit import Actor

    people = make_contacts(database, workspace_id, 2)
    sent = send_campaign(database, workspace_id, variants={"A": people[:1]}, holdout=[])
    _prepared(database, sent)
    assert client.get(f"/l/{codes.link_code(sent.deliveries[people[0]], 0)}", follow_redirects=False).status_code == 302
    with database.session() as db:
        contacts.merge(db, workspace_id=workspace_id, winner_id=people[1], loser_id=people[0], reason="manual", actor=Actor.cli())
    with database.session() as db:
        assert {c.contact_id for c in db.scalars(select(Click))} == {people[1]}
    assert client.get(f"/l/{codes.link_code(sent.deliveries[people[0]], 0)}", follow_redirects=False).status_code == 302
    with database.session() as db:  # a click after the merge lands on the person they became
        assert {c.contact_id for c in db.scalars(select(Click))} == {people[1]}
