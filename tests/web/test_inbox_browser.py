"""The chat widget and the inbox in headless Chromium: a visitor on the demo shop asks a question, the bot
answers from the knowledge base, the visitor asks for a person, the conversation arrives in an agent's
open inbox with the hand-off summary, and the agent's reply reaches the widget — all without a reload."""

from __future__ import annotations

import pytest

from tests.web.conftest import sign_in_browser

pytestmark = pytest.mark.browser


def _prepare(database, workspace_id: int) -> None:
    """Mark the seeded workspace as the demo (the shop page serves the demo's widget) and give it a
    knowledge base; one warm-up question loads the embeddings model before the browser waits on it."""
    from tutti.converse.knowledge import service as knowledge
    from tutti.platform import audit
    from tutti.platform.audit import Actor

    with database.session() as db:
        audit.record(db, workspace_id=workspace_id, actor=Actor.cli(), action="demo.build")
        knowledge.create_item(db, workspace_id=workspace_id, actor=Actor.cli(), title="運費怎麼算",
                              answer="單筆訂單滿 NT$1,500 免運,未滿酌收 NT$80。",
                              phrasings=["運費怎麼算?", "運費多少", "多少錢免運", "有免運嗎", "how much is shipping"])
        knowledge.create_item(db, workspace_id=workspace_id, actor=Actor.cli(), title="退貨",
                              answer="收到商品 7 天內可申請退貨。", phrasings=["可以退貨嗎", "怎麼退貨", "退貨規定"])
    with database.read_session() as db:
        knowledge.match(db, workspace_id=workspace_id, question="運費")


def test_visitor_chat_handoff_and_live_agent_reply(browser, live_server, database):
    from playwright.sync_api import expect

    _prepare(database, live_server.seed.workspace_id)
    agent_context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900}, locale="zh-TW")
    visitor_context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900}, locale="zh-TW")
    try:
        agent = agent_context.new_page()
        agent.set_default_timeout(20_000)
        sign_in_browser(agent, live_server, wait=True)
        agent.goto("/inbox?queue=all")
        expect(agent.locator(".conversation-row")).to_have_count(0)
        agent.evaluate("window.__stillHere = true")  # gone if the page reloads

        shop = visitor_context.new_page()
        shop.set_default_timeout(20_000)
        shop.goto("/shop")
        expect(shop.locator("h1")).to_contain_text("好日子生活選物")
        shop.click("#tutti-widget .l")
        expect(shop.locator("#tutti-widget .greet")).to_contain_text("您好")
        shop.evaluate("window.__stillHere = true")
        box = shop.locator("#tutti-widget textarea")
        box.fill("請問運費怎麼算?")
        box.press("Enter")
        expect(shop.locator("#tutti-widget .b.customer")).to_contain_text("請問運費怎麼算?")
        expect(shop.locator("#tutti-widget .b.bot").first).to_contain_text("NT$1,500", timeout=40_000)

        # the conversation (with the bot) appears in the agent's open inbox by itself
        expect(agent.locator(".conversation-row")).to_have_count(1, timeout=20_000)

        box.fill("我要找真人客服")
        box.press("Enter")
        expect(shop.locator("#tutti-widget .b.bot").last).to_contain_text("專人")

        expect(agent.locator(".conversation-row .badge")).to_contain_text("等待真人")
        assert agent.evaluate("window.__stillHere") is True
        agent.locator(".conversation-row a").first.click()
        expect(agent.locator(".msg-note")).to_contain_text("轉真人摘要")  # the hand-off summary for the person
        expect(agent.locator("#messages")).to_contain_text("我要找真人客服")

        agent.fill("#reply-form textarea", "您好,我是客服小陳,馬上幫您確認!")
        agent.click("#reply-form button[type=submit]")
        expect(agent.locator("#messages .msg-agent")).to_contain_text("客服小陳")

        # the reply reaches the widget over its SSE stream, the shop page never reloaded
        expect(shop.locator("#tutti-widget .b.agent")).to_contain_text("客服小陳", timeout=20_000)
        assert shop.evaluate("window.__stillHere") is True
        assert "轉真人摘要" not in shop.locator("#tutti-widget .m").inner_text()  # the note stays internal

        # the visitor writes again: the agent's open conversation updates live
        agent.evaluate("window.__stillHere = true")
        box.fill("好的,謝謝")
        box.press("Enter")
        expect(agent.locator("#messages")).to_contain_text("好的,謝謝", timeout=20_000)
        assert agent.evaluate("window.__stillHere") is True
    finally:
        agent_context.close()
        visitor_context.close()


def test_signed_in_member_on_the_shop_lands_on_their_profile(browser, live_server, database):
    from playwright.sync_api import expect

    from tutti.audience.models import Identity
    from tutti.converse.conversations.models import Conversation

    _prepare(database, live_server.seed.workspace_id)
    context = browser.new_context(base_url=live_server.url, locale="zh-TW")
    try:
        shop = context.new_page()
        shop.set_default_timeout(20_000)
        shop.goto("/shop?member=C001")  # 王小明, who has orders: the page signs his id like a shop's server would
        expect(shop.locator("#signed-in")).to_contain_text("王小明")
        shop.click("#tutti-widget .l")
        box = shop.locator("#tutti-widget textarea")
        box.fill("可以退貨嗎")
        box.press("Enter")
        expect(shop.locator("#tutti-widget .b.bot").first).to_be_visible(timeout=40_000)
        with database.read_session() as db:
            contact_ids = set(db.query(Conversation.contact_id).filter(Conversation.workspace_id == live_server.seed.workspace_id))
            owner = db.query(Identity.contact_id).filter(Identity.kind == "external_id", Identity.value == "C001").scalar()
        assert contact_ids == {(owner,)}
    finally:
        context.close()
