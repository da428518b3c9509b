"""Describe a segment in words: the offline parser (zh-TW and English) against the workspace's own tags,
categories and cities; the LLM path through the fake OpenAI server, and its fallback when the model's
rules are invalid or it is unreachable."""

from __future__ import annotations

import pytest

from tests.fake_openai import fake_openai  # noqa: F401 - the fixture
from tutti.ai.llm import LLM
from tutti.audience import commerce, contacts, tags
from tutti.platform.audit import Actor
from tutti.reach.segments import service, words

ACTOR = Actor.cli()


@pytest.fixture
def shop(database, workspace_id):
    with database.session() as db:
        for name in ("VIP", "沉睡會員"):
            tags.create_tag(db, workspace_id=workspace_id, name=name, actor=ACTOR)
        commerce.upsert_products(db, workspace_id=workspace_id, products=[{"sku": "SK1", "name": "精華液", "category": "保養"}])
        contacts.upsert(db, workspace_id=workspace_id, actor=ACTOR, identities={"email": "a@example.com"}, profile={"city": "臺北市"})
    return workspace_id


def _children(result) -> list[dict]:
    return result.rules["root"]["children"] if result.rules else []


@pytest.mark.parametrize("text, locale, expected", [
    ("過去30天買過兩次、有LINE的VIP", "zh-TW", [
        {"kind": "orders", "measure": "count", "op": "gte", "value": 2.0, "days": 30},
        {"kind": "identity", "identity": "line_uid", "present": True}, {"kind": "tag", "tag": "VIP", "op": "has"}]),
    ("Spent over 3,000 in the last 90 days", "en", [{"kind": "orders", "measure": "total_spent", "op": "gt", "value": 3000.0, "days": 90}]),
    ("90天內買過保養但近30天沒有買", "zh-TW", [
        {"kind": "bought", "category": "保養", "days": 90}, {"kind": "orders", "measure": "count", "op": "equals", "value": 0.0, "days": 30}]),
    ("bought skincare in the last 90 days", "en", [{"kind": "bought", "category": "保養", "days": 90}]),
    ("台北的女性", "zh-TW", [{"kind": "attribute", "field": "gender", "op": "equals", "value": "female"},
                           {"kind": "attribute", "field": "city", "op": "equals", "value": "臺北市"}]),
    ("email subscribers who are not VIP", "en", [{"kind": "reachable", "channel": "email", "value": True},
                                                 {"kind": "tag", "tag": "VIP", "op": "has_not"}]),
    ("近7天加入購物車但沒有結帳", "zh-TW", [{"kind": "event", "name": "Product Added", "op": "performed", "days": 7},
                                 {"kind": "event", "name": "Checkout Started", "op": "not_performed", "days": 7}]),
])
def test_offline_parser_understands_common_phrasings(database, shop, text, locale, expected):
    with database.read_session() as db:
        result = words.parse_words(db, workspace_id=shop, text=text, locale=locale, use_llm=False)
    got = [{k: v for k, v in c.items() if k != "where"} for c in _children(result)]
    assert got == expected
    assert result.not_understood == []
    assert result.source == "parser" and result.understood


def test_what_is_not_understood_is_said(database, shop):
    with database.read_session() as db:
        rules, _, not_understood = words.parse_words(db, workspace_id=shop, text="喜歡貓的VIP，住在月球", use_llm=False)
    assert rules["root"]["children"] == [{"kind": "tag", "tag": "VIP", "op": "has"}]
    assert not_understood == ["喜歡貓的", "住在月球"]
    with database.read_session() as db:
        rules, _, not_understood = words.parse_words(db, workspace_id=shop, text="people who like cats", use_llm=False)
    assert rules is None and not_understood == ["like cats"]


def test_llm_rules_are_validated_and_used(database, shop, fake_openai):  # noqa: F811
    llm = LLM(base_url=fake_openai.url, model="fake")
    fake_openai.reply_json({"rules": {"version": 1, "root": {"kind": "group", "op": "and", "children": [{"kind": "tag", "tag": "VIP"}]}},
                            "understood": ["VIP"], "not_understood": ["cats"]})
    with database.read_session() as db:
        result = words.parse_words(db, workspace_id=shop, text="VIP who like cats", locale="en", llm=llm)
    assert result.source == "llm" and _children(result) == [{"kind": "tag", "tag": "VIP", "op": "has"}]
    assert result.not_understood == ["cats"]
    assert "VIP" in fake_openai.sent_text() and "保養" in fake_openai.sent_text()  # the workspace's vocabulary was given


def test_invalid_llm_rules_fall_back_to_the_parser_and_say_so(database, shop, fake_openai):  # noqa: F811
    llm = LLM(base_url=fake_openai.url, model="fake")
    fake_openai.reply_json({"rules": {"root": {"kind": "group", "children": [{"kind": "event", "name": "x", "op": "at_least"}]}},
                            "understood": [], "not_understood": []})
    with database.read_session() as db:
        result = words.parse_words(db, workspace_id=shop, text="has LINE", locale="en", llm=llm)
    assert result.source == "parser" and "rules.children[0]" in result.note
    assert _children(result) == [{"kind": "identity", "identity": "line_uid", "present": True}]
    fake_openai.fail(500)
    with database.read_session() as db:
        result = words.parse_words(db, workspace_id=shop, text="has LINE", locale="en", llm=llm)
    assert result.source == "parser" and "could not be used" in result.note


def test_parsed_rules_count(database, shop):
    with database.read_session() as db:
        rules, _, _ = words.parse_words(db, workspace_id=shop, text="台北", use_llm=False)
        assert service.count(db, workspace_id=shop, rules=rules) == 1
