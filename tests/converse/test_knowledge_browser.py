"""The knowledge pages in a real browser (Chromium through Playwright): try a question, turn a gaps cluster
into an FAQ, mark another out of scope."""

from __future__ import annotations

from tests.web.conftest import browser, live_server, page, sign_in_browser  # noqa: F401
from tutti.converse.knowledge import gaps, service
from tutti.platform.audit import Actor


def test_try_a_question_add_a_gap_as_faq_and_mark_one_out_of_scope(page, live_server, database):  # noqa: F811
    page.set_default_timeout(45_000)  # a shared, busy machine; the first question embeds the knowledge
    workspace_id = live_server.seed.workspace_id
    with database.session() as db:
        service.create_item(db, workspace_id=workspace_id, actor=Actor.cli(), external_id="ship", answer="滿 NT$990 免運",
                            phrasings=["運費多少？", "買多少可以免運", "How much is shipping?"])
        for question in ("你們有賣禮物卡嗎", "請問有禮物卡可以買嗎"):
            gaps.record(db, workspace_id=workspace_id, question=question, confidence=0.2)
        gaps.record(db, workspace_id=workspace_id, question="Can I bring my cat to the store?", confidence=0.1)
    sign_in_browser(page, live_server, wait=True)

    page.goto("/knowledge")
    page.get_by_test_id("ask-question").fill("請問運費要多少錢")
    page.get_by_test_id("ask-question").press("Enter")
    page.wait_for_function("document.querySelector('[data-testid=ask-result]').innerText.includes('NT$990')")

    page.get_by_test_id("gaps").click()
    gift = page.get_by_test_id("gap-cluster").filter(has_text="禮物卡")
    gift.locator("textarea[name=answer]").fill("有，官網與門市都能買禮物卡。")
    gift.get_by_test_id("add-faq").click()
    page.wait_for_url("**/knowledge/*?saved=1")
    assert "你們有賣禮物卡嗎" in page.content()

    page.goto("/knowledge/gaps")
    page.get_by_test_id("gap-cluster").filter(has_text="my cat").get_by_test_id("mark-out-of-scope").click()
    page.wait_for_url("**/knowledge/gaps")
    assert page.get_by_test_id("gap-cluster").count() == 0
    page.goto("/knowledge")
    assert "範圍外：轉真人" in page.content()
    with database.session() as db:
        items = {i["external_id"]: i for i in service.list_items(db, workspace_id=workspace_id)[0]}
    assert items["out-of-scope"]["kind"] == "out_of_scope" and items["out-of-scope"]["phrasings"] == ["Can I bring my cat to the store?"]
