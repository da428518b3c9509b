"""The copilot for people: the hand-off summary, suggested replies, a summary of a long conversation and
the topic of each resolved conversation (also written to the contact as the tag `topic:<name>`, so
marketing can target people by what they asked about).

Offline everything is extractive (the customer's own words, the intents and knowledge the agent used);
with an LLM configured the summary and the suggested reply are written by the LLM, and any LLM failure
falls back to the extractive version."""

from __future__ import annotations

import logging
import re
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.converse.agents import signals
from tutti.converse.conversations.models import AgentDecision, Conversation, Message
from tutti.platform.models import Workspace

log = logging.getLogger("tutti.copilot")

LABELS = {
    "zh-TW": {"title": "轉真人摘要", "reason": "原因", "intent": "意圖", "order": "相關訂單", "sentiment": "情緒", "said": "客人說",
              "negative": "負面", "neutral": "平穩", "topic": "主題", "messages": "則訊息", "status": "狀態"},
    "en": {"title": "Hand-off summary", "reason": "Reason", "intent": "Intent", "order": "Order", "sentiment": "Sentiment", "said": "Customer said",
           "negative": "negative", "neutral": "calm", "topic": "Topic", "messages": "messages", "status": "Status"},
}
REASONS = {
    "zh-TW": {"rule": "規則", "asked_for_person": "客人要求真人", "keyword": "關鍵字", "negative_sentiment": "強烈負面情緒",
              "repeated_failure": "同一問題答不好兩次", "low_confidence": "知識庫沒有把握", "llm_error": "AI 出錯", "ungrounded": "AI 答案無依據",
              "tool_error": "工具出錯", "knowledge_error": "知識庫出錯", "non_text": "客人傳了貼圖或圖片", "agent_error": "AI 出錯", "manual": "手動",
              "no_product_match": "商品目錄找不到客人問的商品"},
}


def _locale(db: Session, workspace_id: int) -> str:
    locale = db.scalar(select(Workspace.locale).where(Workspace.id == workspace_id)) or "zh-TW"
    return "zh-TW" if locale.startswith("zh") else "en"


def _customer_texts(db: Session, conversation: Conversation, limit: int = 6) -> list[str]:
    rows = db.scalars(select(Message.text).where(Message.conversation_id == conversation.id, Message.author == "customer",
                                                 Message.kind == "text").order_by(Message.id.desc()).limit(limit))
    return [t for t in rows if t][::-1]


def _decisions(db: Session, conversation: Conversation) -> list[AgentDecision]:
    return list(db.scalars(select(AgentDecision).where(AgentDecision.conversation_id == conversation.id).order_by(AgentDecision.id)))


def _order_in_question(db: Session, conversation: Conversation, texts: list[str], intents: list[str]) -> dict | None:
    from tutti.converse.agents import tools

    refs = [r for t in texts for r in signals.order_refs(t)]
    found = tools._find_order(db, conversation.workspace_id, conversation.contact_id, refs) if refs else None
    if found is None and not any(i in ("order_status", "order_list") for i in intents):
        return None
    result = tools.order_status(db, workspace_id=conversation.workspace_id, contact_id=conversation.contact_id, order_number=found)
    return result.get("order") if result.get("found") else None


def handoff_summary(db: Session, *, conversation: Conversation, reason: str, decision=None) -> dict:
    """What the person taking over needs: why, what the customer wants and said, the order, the mood."""
    locale = _locale(db, conversation.workspace_id)
    labels = LABELS[locale]
    texts = _customer_texts(db, conversation)
    decisions = _decisions(db, conversation)
    intents = [d.detail.get("intent") or d.tool for d in decisions if (d.detail or {}).get("intent") or d.tool]
    if decision is not None and (decision.intent or decision.tool):
        intents.append(decision.intent or decision.tool)
    titles = [d.detail.get("title") for d in decisions if (d.detail or {}).get("title")]
    order = _order_in_question(db, conversation, texts, intents)
    mood = max((signals.negativity(t).score for t in texts), default=0.0)
    summary = {"reason": reason, "reason_detail": decision.reason if decision else None, "intents": list(dict.fromkeys(intents)),
               "knowledge": list(dict.fromkeys(titles))[:3], "order": order, "sentiment": mood, "customer_messages": texts}
    llm_text = _llm_summary(db, conversation, texts, reason) if texts else None
    lines = [f"{labels['title']} · {labels['reason']}: {REASONS.get(locale, {}).get(reason, reason)}"]
    if decision is not None and decision.reason:
        lines[0] += f" ({decision.reason})"
    if summary["intents"] or summary["knowledge"]:
        lines.append(f"{labels['intent']}: {', '.join(summary['intents'] + summary['knowledge'])}")
    if order:
        lines.append(f"{labels['order']}: {order['order_number']} · {order['status']} · {order['currency']} {order['total']:g} · {order['placed_at']}")
    lines.append(f"{labels['sentiment']}: {labels['negative'] if mood >= 2 else labels['neutral']}" + (f" ({mood:g})" if mood else ""))
    if llm_text:
        lines.append(llm_text)
    else:
        lines += [f"{labels['said']}: 「{t[:200]}」" if locale == "zh-TW" else f"{labels['said']}: \"{t[:200]}\"" for t in texts[-3:]]
    summary["text"] = "\n".join(lines)
    summary["by"] = "llm" if llm_text else "extractive"
    return summary


def _llm_summary(db: Session, conversation: Conversation, texts: list[str], reason: str) -> str | None:
    from tutti.converse.agents import llm as agent_llm

    client = agent_llm.client(db, workspace_id=conversation.workspace_id)
    if client is None:
        return None
    return agent_llm.summarise(client, texts=texts, reason=reason, language=_locale(db, conversation.workspace_id))


def summarise(db: Session, *, workspace_id: int, conversation_id: int) -> dict:
    """A summary of a (long) conversation for a person opening it."""
    from tutti.converse.conversations import service

    conversation = service.get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    texts = _customer_texts(db, conversation, limit=50)
    decisions = _decisions(db, conversation)
    locale = _locale(db, workspace_id)
    labels = LABELS[locale]
    llm_text = _llm_summary(db, conversation, texts, "summary") if texts else None
    intents = list(dict.fromkeys(d.detail.get("intent") or d.tool for d in decisions if (d.detail or {}).get("intent") or d.tool))
    titles = list(dict.fromkeys(d.detail.get("title") for d in decisions if (d.detail or {}).get("title")))
    count = db.scalar(select(Message.id).where(Message.conversation_id == conversation.id).order_by(Message.id.desc()).limit(1))
    if llm_text:
        text = llm_text
    else:
        picked = texts[:1] + texts[-2:] if len(texts) > 3 else texts
        lines = [f"{labels['status']}: {conversation.status} · {len(texts)} {labels['messages']}"]
        if intents or titles:
            lines.append(f"{labels['intent']}: {', '.join(intents + titles)}")
        lines += [f"{labels['said']}: {t[:200]}" for t in dict.fromkeys(picked)]
        text = "\n".join(lines)
    return {"conversation_id": conversation.id, "text": text, "by": "llm" if llm_text else "extractive", "intents": intents,
            "knowledge": titles, "customer_messages": len(texts), "last_message_id": count}


def suggest_replies(db: Session, *, workspace_id: int, conversation_id: int, limit: int = 3) -> list[dict]:
    """Replies a person could send to the customer's last message: the knowledge base's best answers
    (with their source), or the LLM's draft grounded on them."""
    from tutti.converse.conversations import service

    conversation = service.get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    texts = _customer_texts(db, conversation, limit=3)
    if not texts:
        return []
    question = texts[-1]
    suggestions: list[dict] = []
    try:
        from tutti.converse.agents import router

        match = router._knowledge(db, workspace_id, question)  # the same retrieval the agent uses
    except Exception:  # noqa: BLE001 - no knowledge base (yet): no knowledge suggestions
        match = None
    if match is not None and match.item_id is not None:
        suggestions.append({"text": match.answer, "knowledge_id": match.item_id, "title": match.title, "confidence": match.confidence,
                            "by": "knowledge"})
        for candidate in list(getattr(match, "candidates", None) or [])[1:limit]:
            if isinstance(candidate, dict) and candidate.get("answer") and candidate.get("item_id") != match.item_id:
                suggestions.append({"text": candidate["answer"], "knowledge_id": candidate.get("item_id"), "title": candidate.get("title"),
                                    "confidence": candidate.get("confidence"), "by": "knowledge"})
    from tutti.converse.agents import llm as agent_llm

    client = agent_llm.client(db, workspace_id=workspace_id)
    if client is not None:
        draft = agent_llm.draft_reply(client, question=question, knowledge=suggestions, language=conversation.language or "zh-TW")
        if draft:
            suggestions.insert(0, {"text": draft["answer"], "knowledge_id": (draft.get("sources") or [None])[0], "by": "llm"})
    return suggestions[:limit]


def _topic_name(text: str) -> str:
    text = re.sub(r"\s+", " ", (text or "").strip())
    return text[:90]


def topic_of(db: Session, *, conversation: Conversation) -> str | None:
    """The conversation's topic: the knowledge item or intent the agent used most, else none."""
    decisions = _decisions(db, conversation)
    votes: Counter = Counter()
    for d in decisions:
        detail = d.detail or {}
        if detail.get("topic"):
            votes[_topic_name(detail["topic"])] += 2 if d.action == "answer" else 1
        elif detail.get("title"):
            votes[_topic_name(detail["title"])] += 2 if d.action == "answer" else 1
        elif d.tool:
            votes[d.tool] += 2
        elif detail.get("intent"):
            votes[detail["intent"]] += 1
    if not votes:
        return None
    return votes.most_common(1)[0][0]


def record_topic(db: Session, *, conversation: Conversation) -> str | None:
    """Name the topic of a resolved conversation and tag the contact `topic:<name>` (the loop to Reach)."""
    from tutti.audience import tags

    topic = conversation.topic or topic_of(db, conversation=conversation)
    if not topic:
        return None
    conversation.topic = topic
    tags.apply(db, workspace_id=conversation.workspace_id, contact_ids=[conversation.contact_id], tag=f"topic:{topic}", source="converse")
    return topic
