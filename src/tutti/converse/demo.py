"""The demo brand's Converse content: its knowledge base, three teams with their people, and a few dozen
past conversations (answered by the bot, answered with the customer's real order, handed off to people).

The knowledge base is `knowledge/data/faq.jsonl` with the brand's out-of-scope examples
(`out_of_scope_demo.jsonl`), imported through the knowledge import service as
`tutti kb import` does; each item's `team` (support, sales, billing) becomes the name of the demo team it
hands off to. Conversations are written set-based (one flush of conversations, one executemany of
messages and of decisions) from the scripts below: they are what happened, not replayed through the agent,
so the build is fast and the same for every seed's shape.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources

from sqlalchemy import insert, select

from tutti.audience.models import Identity, Order
from tutti.converse.agents.language import STATUS_WORDS, say
from tutti.converse.conversations import teams
from tutti.converse.conversations.models import AgentDecision, Conversation, Message
from tutti.converse.knowledge import files, questions, service
from tutti.converse.knowledge.jobs import embed_and_calibrate
from tutti.converse.knowledge.models import KnowledgeItem
from tutti.platform import workspaces
from tutti.platform.audit import Actor
from tutti.platform.models import User

LABEL = "客服知識庫與對話 knowledge base and conversations"
# At test sizes the phrasings' vectors are made by the first question instead (minutes of CPU per build);
# a real demo pays it once here so the first question a visitor asks is answered at once.
EMBED_FROM_CONTACTS = 1_000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

# item team -> (team name, business hours, out-of-hours message); support is the default team
TEAMS = {
    "support": ("客服 Support", ("10:00", "19:00")),
    "sales": ("銷售 Sales", ("10:00", "18:00")),
    "billing": ("帳務 Billing", ("10:00", "18:00")),
}
OUT_OF_HOURS = {"zh-TW": "客服人員目前不在線上（服務時間：週一至週五 10:00–19:00），上班後會在這裡回覆您。",
                "en": "Our team is away (Mon–Fri 10:00–19:00 Taipei time); we'll reply here when we're back."}
PEOPLE = (("mei.lin@demo.tutti.local", "林小美", "support"), ("zhiming.chen@demo.tutti.local", "陳志明", "support"),
          ("yating.wang@demo.tutti.local", "王雅婷", "sales"), ("jiahao.zhang@demo.tutti.local", "張家豪", "billing"))

# Bot answers from the knowledge base: (item, the customer's message, language, channel, CSAT score or None)
ANSWERED = (
    ("ship-001", "請問買多少可以免運？", "zh-TW", "line", 5), ("ship-004", "可以寄到7-11取貨嗎", "zh-TW", "line", None),
    ("ret-001", "收到的乳液還沒拆，想退貨可以嗎", "zh-TW", "line", 5), ("ret-003", "退款大概多久會退到信用卡？", "zh-TW", "web", 4),
    ("pay-001", "可以用LINE Pay付款嗎", "zh-TW", "line", None), ("pay-002", "信用卡可以分期嗎？", "zh-TW", "web", 5),
    ("mem-002", "要怎麼升等金卡", "zh-TW", "line", 4), ("mem-004", "生日禮什麼時候會發", "zh-TW", "line", None),
    ("pts-003", "點數會過期嗎", "zh-TW", "line", 5), ("inv-003", "發票要打統編怎麼用", "zh-TW", "web", None),
    ("store-002", "門市今天開到幾點", "zh-TW", "line", None), ("promo-005", "雙11有什麼優惠", "zh-TW", "line", 5),
    ("prod-011", "維他命C精華變黃了還可以用嗎", "zh-TW", "line", 4), ("prod-013", "防曬乳要卸妝嗎", "zh-TW", "web", None),
    ("ship-007", "Do you ship to Hong Kong?", "en", "web", 4), ("pay-007", "Can I pay with a card from Japan?", "en", "web", None),
    ("store-001", "Where is your Taipei store?", "en", "web", 5), ("mem-006", "每個月8號是會員日嗎", "zh-TW", "line", None),
)
# The customer's own order, answered by the order-status tool: (message, language, channel)
ORDER_QUESTIONS = (("我的訂單什麼時候會到？", "zh-TW", "line"), ("請問我上次買的東西出貨了嗎", "zh-TW", "line"),
                   ("訂單到哪裡了", "zh-TW", "web"), ("Where is my order?", "en", "web"), ("我的包裹寄出了嗎？", "zh-TW", "line"),
                   ("想查一下訂單狀態", "zh-TW", "line"))
# Hand-offs: (message, language, channel, reason, team, what became of it, a person's reply or None, CSAT)
HANDOFFS = (
    ("請幫我轉真人客服", "zh-TW", "line", "asked_for_person", "support", "resolved",
     "您好，我是客服小美，請問有什麼可以幫您的嗎？", 5),
    ("等了一個禮拜還沒收到，你們到底有沒有在處理！！", "zh-TW", "line", "negative_sentiment", "support", "assigned",
     "非常抱歉讓您久等了，我馬上幫您向物流確認，稍後回覆您。", None),
    ("可以用PayPal付款嗎", "zh-TW", "web", "low_confidence", "billing", "waiting", None, None),
    ("公司想訂200份禮盒當尾牙禮物，可以請業務聯絡我嗎", "zh-TW", "line", "asked_for_person", "sales", "follow_up",
     "您好，我是業務雅婷，已將報價單寄到您的信箱，請確認數量與寄送地址後回覆我。", None),
    ("我的發票統編打錯了，而且已經跨月了怎麼辦", "zh-TW", "line", "low_confidence", "billing", "resolved",
     "您好，跨期的發票無法作廢重開，我們已為您開立折讓並重新開立正確統編的發票，請查收 e-mail。", 4),
    ("I want to talk to a real person please", "en", "web", "asked_for_person", "support", "resolved",
     "Hi, this is Zhiming from Hao Rizi. How can I help you today?", 5),
    ("你們的精華液害我整臉過敏，超生氣", "zh-TW", "line", "negative_sentiment", "support", "assigned",
     "很抱歉造成您的不適，請先停用並傳照片給我們，我們會為您辦理安心退。", None),
    ("有學生優惠嗎", "zh-TW", "line", "low_confidence", "sales", "waiting", None, None),
    ("上次客服說會回電，結果都沒有", "zh-TW", "line", "negative_sentiment", "support", "resolved",
     "非常抱歉，我是客服家豪，已經處理好您的退款，款項會在 7–14 個工作天內退回原卡。", 2),
    ("門市可以帶狗狗進去嗎", "zh-TW", "web", "low_confidence", "support", "waiting", None, None),
)


def build_demo(database, *, workspace_id: int, seed: int, today: date, contacts: int, report) -> None:
    report(LABEL, 0, 3)
    with database.session() as db:
        team_ids, people = _teams_and_people(db, workspace_id)
        _knowledge(db, workspace_id)
    report(LABEL, 1, 3)
    if contacts >= EMBED_FROM_CONTACTS:
        embed_and_calibrate(database, workspace_id=workspace_id)
    report(LABEL, 2, 3)
    with database.session() as db:
        _conversations(db, workspace_id, random.Random(f"converse-{seed}"), today, team_ids, people)
    report(LABEL, 3, 3)


def _teams_and_people(db, workspace_id: int) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The three teams (support is the default) and four people with the agent role. People are offline, so a
    visitor's hand-off in a live demo waits in the unassigned queue for whoever presents it."""
    team_ids = {}
    for key, (name, (start, end)) in TEAMS.items():
        team = teams.create_team(db, workspace_id=workspace_id, name=name, is_default=key == "support",
                                 business_hours={day: [[start, end]] for day in WEEKDAYS}, out_of_hours_message=OUT_OF_HOURS)
        team_ids[key] = team.id
    people: dict[str, list[int]] = {key: [] for key in TEAMS}
    for email, name, key in PEOPLE:
        user = db.scalar(select(User).where(User.email == email)) or workspaces.create_user(db, email=email, password=None, name=name)
        workspaces.add_member(db, workspace_id=workspace_id, user_id=user.id, role="agent", actor=Actor.cli())
        teams.add_member(db, workspace_id=workspace_id, team_id=team_ids[key], user_id=user.id, online=False)
        people[key].append(user.id)
    return team_ids, people


def _knowledge(db, workspace_id: int) -> dict:
    data = resources.files("tutti.converse.knowledge").joinpath("data")
    # the FAQ and the brand's own out-of-scope examples (what "Mark out of scope" on the gaps page grows)
    records = [record for name in ("faq.jsonl", "out_of_scope_demo.jsonl")
               for record in files.parse(name, data.joinpath(name).read_text(encoding="utf-8"))]
    for record in records:
        record.team = TEAMS[record.team][0] if record.team in TEAMS else record.team
    summary = service.import_records(db, workspace_id=workspace_id, actor=Actor.cli(), records=records,
                                     source="demo faq.jsonl")
    # the questions the brand tested its knowledge base with: they calibrate the agent's confidence (also
    # the validation set of evals/knowledge.py)
    name = "calibration_questions.jsonl"
    questions.replace(db, workspace_id=workspace_id, actor=Actor.cli(), filename=name,
                      data=data.joinpath(name).read_text(encoding="utf-8"))
    return summary


def _conversations(db, workspace_id: int, rng: random.Random, today: date, team_ids: dict, people: dict) -> None:
    items = {row.external_id: row for row in db.execute(select(KnowledgeItem.external_id, KnowledgeItem.id, KnowledgeItem.answer,
                                                                KnowledgeItem.title, KnowledgeItem.topic)
                                                         .where(KnowledgeItem.workspace_id == workspace_id))}
    end = datetime.combine(today, time(0), tzinfo=UTC) - timedelta(hours=8)  # local midnight, Asia/Taipei
    # customers who follow the brand on LINE, so a person's reply to a LINE conversation can reach them
    on_line = (Identity.workspace_id == workspace_id) & (Identity.kind == "line_uid")
    orders = {}  # the latest recent order of some of them, for the order-status conversations
    for contact_id, number, status, placed, total in db.execute(
            select(Order.contact_id, Order.external_id, Order.status, Order.placed_at, Order.total)
            .join(Identity, (Identity.contact_id == Order.contact_id) & on_line)
            .where(Order.workspace_id == workspace_id, Order.placed_at < end - timedelta(days=1))
            .order_by(Order.placed_at.desc()).limit(200)):
        orders.setdefault(contact_id, (number, status, placed, total))
    ids = list(db.scalars(select(Identity.contact_id).where(on_line).order_by(Identity.contact_id).limit(5_000)))
    if not ids:
        return
    order_contacts = rng.sample(sorted(orders), min(len(ORDER_QUESTIONS), len(orders)))
    pool = [i for i in ids if i not in orders] or ids
    others = rng.sample(pool, min(len(pool), len(ANSWERED) + len(HANDOFFS)))
    scripts = []  # (conversation, [(author, text, kind, payload, seconds after start, user)], decision)

    def start() -> datetime:  # a moment in shop hours over the last two weeks
        return end - timedelta(days=rng.randint(1, 14)) + timedelta(hours=rng.randint(10, 21), minutes=rng.randint(0, 59))

    for (item_id, text, language, channel, csat), contact_id in zip(ANSWERED, others, strict=False):
        item, at = items[item_id], start()
        conversation = Conversation(contact_id=contact_id, channel=channel, status="resolved", language=language, topic=item.topic,
                                    resolved_at=at + timedelta(minutes=3), csat_score=csat)
        decision = {"action": "answer", "knowledge_id": item.id, "confidence": round(rng.uniform(0.78, 0.97), 2),
                        "reason": f"knowledge item {item_id}", "detail": {"source": item.title, "sources": [item.id]}}
        scripts.append((conversation, at, [("customer", text, "text", {}, 0, None),
                                          ("bot", f"{item.answer}\n{say('source', language, source=item.title)}", "text",
                                           {"knowledge_id": item.id, "source": item.title}, 2, None)], decision))
    for (text, language, channel), contact_id in zip(ORDER_QUESTIONS, order_contacts, strict=False):
        number, status, placed, total = orders[contact_id]
        answer = say("order_status", language, order=number, status=STATUS_WORDS[language].get(status, status),
                     placed=placed.date().isoformat(), currency="TWD", total=f"{total:,.0f}")
        at = max(start(), placed.replace(tzinfo=placed.tzinfo or UTC) + timedelta(hours=1))
        conversation = Conversation(contact_id=contact_id, channel=channel, status="resolved", language=language, topic="orders",
                                    resolved_at=at + timedelta(minutes=2))
        decision = {"action": "tool", "tool": "order_status", "reason": "the customer asked about their order",
                        "detail": {"tool_result": {"found": True, "order": {"order_number": number, "status": status}}}}
        scripts.append((conversation, at, [("customer", text, "text", {}, 0, None),
                                          ("bot", answer, "text", {"tool": "order_status"}, 2, None)], decision))
    for (text, language, channel, reason, team, outcome, reply, csat), contact_id in zip(
            HANDOFFS, others[len(ANSWERED):], strict=False):
        at, person = start(), rng.choice(people[team])
        assigned = person if outcome != "waiting" else None
        conversation = Conversation(contact_id=contact_id, channel=channel, status=outcome, language=language, team_id=team_ids[team],
                                    assignee_user_id=assigned, handled_by_bot_only=False, handed_off_at=at + timedelta(seconds=2),
                                    resolved_at=at + timedelta(hours=2) if outcome == "resolved" else None, csat_score=csat,
                                    follow_up_at=at + timedelta(days=3) if outcome == "follow_up" else None,
                                    first_human_response_at=at + timedelta(minutes=rng.randint(3, 40)) if reply else None)
        summary = f"轉接原因 {reason}｜客戶：{text}" if language == "zh-TW" else f"Hand-off ({reason}). Customer: {text}"
        messages = [("customer", text, "text", {}, 0, None), ("bot", say("handoff", language), "text", {"handoff": reason}, 2, None),
                    ("system", summary, "note", {"handoff_reason": reason, "team_id": team_ids[team]}, 2, None)]
        if reply:
            messages.append(("agent", reply, "text", {}, (conversation.first_human_response_at - at).seconds, assigned))
        decision = {"action": "handoff", "handoff_reason": reason, "confidence": 0.31 if reason == "low_confidence" else None,
                        "reason": f"hand-off: {reason}", "detail": {}}
        scripts.append((conversation, at, messages, decision))
        if reason == "low_confidence":
            service.record_unanswered(db, workspace_id=workspace_id, question=text, confidence=0.31, reason="demo history",
                                      contact_id=contact_id)
    _write(db, workspace_id, scripts)


def _write(db, workspace_id: int, scripts: list) -> None:
    """All conversations in one flush, then their messages and decisions in one executemany each."""
    for conversation, at, messages, _ in scripts:
        conversation.workspace_id, conversation.created_at, conversation.tags = workspace_id, at, []
        conversation.first_customer_message_at = at
        conversation.first_response_at = at + timedelta(seconds=2)
        conversation.last_message_at = at + timedelta(seconds=max(m[4] for m in messages))
        if conversation.csat_score is not None:
            conversation.csat_at = (conversation.resolved_at or at) + timedelta(minutes=5)
        conversation.subject = messages[0][1][:300]
    db.add_all([conversation for conversation, *_ in scripts])
    db.flush()
    message_rows, decision_rows = [], []
    for conversation, at, messages, decision in scripts:
        for author, text, kind, payload, seconds, user_id in messages:
            message_rows.append({"workspace_id": workspace_id, "conversation_id": conversation.id, "channel": conversation.channel,
                                 "author": author, "user_id": user_id, "kind": kind, "text": text, "payload": payload,
                                 "created_at": at + timedelta(seconds=seconds)})
        decision_rows.append({"workspace_id": workspace_id, "conversation_id": conversation.id, "knowledge_id": None,
                              "confidence": None, "tool": None, "handoff_reason": None, "latency_ms": 12.0,
                              "created_at": at + timedelta(seconds=1), **decision})
    db.execute(insert(Message), message_rows)
    db.execute(insert(AgentDecision), decision_rows)
