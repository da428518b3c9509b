"""Test sends go through the workspace's real channel: LINE through line-bot-sdk to the LINE emulator."""

from __future__ import annotations

from tests.channels.emulator import line_emulator  # noqa: F401 - the fixture
from tests.reach.tracking_world import make_contacts
from tutti.channels import service as channels
from tutti.platform.audit import Actor
from tutti.reach.templates import service as templates

TESTER = "U" + "ab" * 16


def test_a_line_test_send_arrives_rendered_as_the_chosen_contact(database, workspace_id, line_emulator):  # noqa: F811
    person = make_contacts(database, workspace_id, 1, prefix="美玲")[0]
    content = {"messages": [{"type": "text", "text": "{{ name | default('朋友') }}，春季新品 8 折 https://shop.example/s"},
                            {"type": "template", "altText": "sale", "template": {"type": "buttons", "text": "Hi", "actions": [
                                {"type": "uri", "label": "Shop", "uri": "https://shop.example/a"}]}}]}
    with database.session() as db:
        channels.connect(db, workspace_id=workspace_id, kind="line", name="LINE OA", actor=Actor.cli(),
                         config={"channel_id": "1234567890", "api_base_url": line_emulator.base_url},
                         credentials={"channel_secret": line_emulator.channel_secret, "access_token": line_emulator.access_token})
        template = templates.create_template(db, workspace_id=workspace_id, name="t", channel="line", content=content, actor=Actor.cli())
        outcome = templates.test_send(db, workspace_id=workspace_id, channel="line", content=template.content, to=TESTER,
                                      actor=Actor.cli(), contact_id=person)
    assert outcome["status"] == "sent", outcome
    assert line_emulator.texts(TESTER)[0] == "美玲 0，春季新品 8 折 https://shop.example/s"  # test sends are not tracked
    received = line_emulator.messages(TESTER)
    assert received[1]["message"]["template"]["actions"][0]["uri"] == "https://shop.example/a"
