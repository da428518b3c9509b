"""The router: for each customer message decide — answer from knowledge, use a tool, or hand off — and say why.

Order of the checks (the first that applies wins):
1. hand-off triggers: a workspace rule (e.g. the contact holds the VIP tag), the customer asks for a
   person, a workspace keyword, strongly negative sentiment, the same question failing twice;
2. a pending action (unsubscribe, new e-mail) answered yes or no;
3. with an LLM configured (and allowed for the workspace): grounded generation and tool calling
   (agents/llm.py), where any error becomes a hand-off;
4. offline: a tool intent recognised by rules, slots filled from this contact's own data;
5. the knowledge base's best answer when its calibrated confidence says it is in scope;
6. else a hand-off for low confidence.

`decide` never posts messages or changes conversations: the conversation service records the decision
and acts on it. It may change the contact's own data only for an action the customer just confirmed."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy.orm import Session

from tutti.converse.agents import signals, tools
from tutti.converse.agents.config import get_config
from tutti.converse.agents.language import detect, in_language, say, title_in

log = logging.getLogger("tutti.agents")

HANDOFF_REASONS = ("rule", "asked_for_person", "keyword", "negative_sentiment", "repeated_failure", "low_confidence", "llm_error",
                   "ungrounded", "tool_error", "knowledge_error")
# A question about how things work, even when it mentions orders: the knowledge base answers it.
_POLICY_QUESTION = re.compile(r"怎麼|如何|怎樣|多久|幾天|政策|規定|可以.{0,12}嗎|能不能|可不可以|會不會|會.{0,8}嗎|是不是|是真的嗎|哪裡(可以|能)?(看|查)|過期|到期|"
                              r"\bhow (do|can|long|to|much)\b|\bpolicy\b|\bcan i\b|\bis it possible\b|\bdo (you|my|i)\b|\bwhere (do|can) i\b|"
                              r"\bexpire|\bif i\b|\bwill (my|i)\b")
SIMILAR = 0.6


@dataclass
class Decision:
    action: str  # answer, tool, handoff
    knowledge_id: int | None = None
    confidence: float | None = None
    answer: str | None = None
    reason: str = ""
    tool: str | None = None
    tool_result: dict | None = None
    handoff_reason: str | None = None
    team: int | None = None  # the team a hand-off goes to, when something chose one
    language: str = "zh-TW"
    intent: str | None = None
    source: str | None = None  # the knowledge cited
    sources: list[int] = field(default_factory=list)
    pending_action: dict | None = None  # a question asked; the conversation keeps it until the next message
    clear_pending: bool = False
    sentiment: float = 0.0
    detail: dict = field(default_factory=dict)
    latency_ms: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _turns(history: Sequence) -> list[dict]:
    """History as dicts {author, text, action?}; plain strings are earlier customer messages."""
    turns = []
    for item in history or ():
        if isinstance(item, str):
            turns.append({"author": "customer", "text": item})
        elif isinstance(item, dict):
            turns.append(item)
        else:
            author, text = item[0], item[1]
            turns.append({"author": author, "text": text})
    return turns


def _handoff(reason: str, why: str, language: str, **extra) -> Decision:
    return Decision(action="handoff", handoff_reason=reason, reason=why, language=language, answer=say("handoff", language), **extra)


def _triggers(db: Session, workspace_id: int, contact_id: int | None, text: str, turns: list[dict], config: dict, language: str) -> Decision | None:
    if contact_id is not None and config["rules"]:
        from tutti.audience import tags

        held = {t["name"].lower() for t in tags.tags_of(db, contact_id=contact_id)}
        for rule in config["rules"]:
            if rule["tag"].strip().lower() in held:
                label = rule.get("reason") or rule["tag"]
                return _handoff("rule", f"the contact has the tag '{rule['tag']}' (rule: {label})", language, team=rule.get("team_id"),
                                detail={"rule": rule})
    phrase = signals.asks_for_person(text)
    if phrase:
        return _handoff("asked_for_person", f"the customer asked for a person ('{phrase}')", language, detail={"phrase": phrase})
    folded = signals.fold(text)
    for keyword in config["handoff_keywords"]:
        if signals.fold(keyword) in folded:
            return _handoff("keyword", f"the message has the hand-off keyword '{keyword}'", language, detail={"keyword": keyword})
    mood = signals.negativity(text)
    if mood.score >= config["negative_threshold"]:
        return _handoff("negative_sentiment", f"strongly negative ({mood.score:g}: {', '.join(mood.words)})", language,
                        sentiment=mood.score, detail={"words": mood.words})
    asked = [t["text"] for t in turns if t.get("author") == "customer" and t.get("text")] + [text]
    # each customer message is at most one failure of the answer before it: it asks the same again, or
    # says the answer did not help
    failures = [i for i, message in enumerate(asked)
                if signals.says_it_did_not_help(message) or any(signals.similar(before, message) >= SIMILAR for before in asked[:i])]
    if len(failures) >= 2 and failures[-1] == len(asked) - 1:
        return _handoff("repeated_failure", f"the same question failed twice ({len(failures)} messages asked again or said it did not help)",
                        language, detail={"failures": len(failures)})
    return None


def _pending(db: Session, workspace_id: int, contact_id: int | None, text: str, pending: dict, language: str) -> Decision | None:
    name = pending.get("tool")
    if name not in tools.TOOLS:
        return None
    args = dict(pending.get("args") or {})
    if name == "update_email" and not args.get("email"):
        email = signals.email_in(text)
        if not email:
            return None
        result = tools.run(db, name, workspace_id=workspace_id, contact_id=contact_id, args={"email": email})
        return Decision(action="tool", tool=name, tool_result=result, language=language, answer=tools.render(name, result, language),
                        reason="the customer gave the new e-mail; asking to confirm",
                        pending_action={"tool": name, "args": {"email": result.get("email", email)}} if result.get("ok") else None)
    answer = signals.yes_or_no(text)
    if answer is None:
        return None
    if answer is False:
        return Decision(action="answer", language=language, answer=say("cancelled", language), reason=f"the customer declined {name}",
                        clear_pending=True, tool=name)
    result = tools.run(db, name, workspace_id=workspace_id, contact_id=contact_id, args=args, confirmed=True)
    if name == "update_email" and not result.get("ok"):
        return _handoff("tool_error", f"update_email failed: {result.get('error')}", language, tool=name, tool_result=result, clear_pending=True)
    return Decision(action="tool", tool=name, tool_result=result, language=language, answer=tools.render(name, result, language),
                    reason=f"the customer confirmed {name}", clear_pending=True)


def _knowledge(db: Session, workspace_id: int, text: str):
    from tutti.converse.knowledge import service as knowledge

    return knowledge.match(db, workspace_id=workspace_id, question=text)


def _intent(db: Session, workspace_id: int, contact_id: int | None, text: str):
    intent = signals.intent_of(text)
    if (intent is None or not intent.strong) and contact_id is not None:
        refs = signals.order_refs(text)
        if refs and tools._find_order(db, workspace_id, contact_id, refs):  # one of THEIR order numbers: plainly about it
            intent = signals.Intent("order_status", refs[0], 0.8, strong=True)
    return intent


def _tool(db: Session, workspace_id: int, contact_id: int | None, text: str, language: str, intent) -> Decision | None:
    if intent is None:
        return None
    refs = signals.order_refs(text)
    name = intent.name
    args: dict = {}
    if name == "product_search":
        args["query"] = text
    if name == "update_email":
        email = signals.email_in(text)
        if not email:
            if contact_id is None:
                return Decision(action="tool", tool=name, intent=name, language=language, answer=say("need_contact", language),
                                reason=f"intent {name} ('{intent.phrase}') needs a known customer")
            return Decision(action="tool", tool=name, intent=name, language=language, answer=say("ask_email", language),
                            reason=f"intent {name} ('{intent.phrase}'): asking for the new address", pending_action={"tool": name, "args": {}})
        args["email"] = email
    result = tools.run(db, name, workspace_id=workspace_id, contact_id=contact_id, args=args, refs=refs)
    if name == "product_search" and result.get("searched") and not result.get("matched"):
        return _handoff("no_product_match", f"no product in the catalogue matches {', '.join(result['searched'])}", language,
                        detail={"tool": name, "searched": result["searched"]})
    decision = Decision(action="tool", tool=name, tool_result=result, intent=name, confidence=intent.confidence, language=language,
                        answer=tools.render(name, result, language), reason=f"intent {name} ('{intent.phrase}')")
    if tools.TOOLS[name].changes and result.get("error") != "no_contact":
        if name == "unsubscribe" and result["channels"]:
            decision.pending_action = {"tool": name, "args": {}}
            decision.reason += ": asking to confirm"
        elif name == "update_email" and result.get("ok") and not result.get("unchanged"):
            decision.pending_action = {"tool": name, "args": {"email": result["email"]}}
            decision.reason += ": asking to confirm"
    return decision


def _source_title(match) -> str | None:
    source = match.source
    if isinstance(source, dict):
        return source.get("title") or match.title or source.get("external_id")
    return source or match.title


def _team_id(db: Session, workspace_id: int, team) -> int | None:
    """A knowledge item names its team; hand-offs about it go there when such a team exists."""
    if isinstance(team, int) and not isinstance(team, bool):
        return team
    if isinstance(team, str) and team.strip():
        from sqlalchemy import select

        from tutti.converse.conversations.models import Team

        return db.scalar(select(Team.id).where(Team.workspace_id == workspace_id, Team.name == team.strip()))
    return None


def _answer(db: Session, workspace_id: int, match, config: dict, language: str) -> Decision:
    floor = config["min_confidence"]
    confidence = float(match.confidence or 0)
    detail = {"candidates": _candidates(match), "match_reason": getattr(match, "reason", "")}
    if match.title:
        detail["title"] = match.title
    if getattr(match, "topic", None):
        detail["topic"] = match.topic
    extra = {"knowledge_id": match.item_id, "confidence": confidence, "detail": detail}
    team = _team_id(db, workspace_id, getattr(match, "team", None))
    if match.item_id is None or not match.in_scope or not match.answer or (floor is not None and confidence < floor):
        why = getattr(match, "reason", "") or "below the calibrated threshold"
        return _handoff("low_confidence", f"no knowledge answer is confident enough ({confidence:.2f}: {why})", language, team=team, **extra)
    source = _source_title(match)
    answer = in_language(match.answer.strip(), language)
    if source:
        answer = f"{answer}\n{say('source', language, source=title_in(source, language))}"
    return Decision(action="answer", answer=answer, source=source, sources=[match.item_id], language=language, team=team,
                    reason=f"knowledge item {match.item_id} ('{match.title}') at confidence {confidence:.2f}", **extra)


def _candidates(match) -> list:
    out = []
    for candidate in list(getattr(match, "candidates", None) or [])[:5]:
        if isinstance(candidate, dict):
            out.append({k: candidate[k] for k in ("item_id", "score", "title") if k in candidate})
        elif hasattr(candidate, "item_id"):
            out.append({"item_id": candidate.item_id, "title": getattr(candidate, "title", None),
                        "score": round(float(getattr(candidate, "score", 0) or 0), 4)})
        else:
            out.append(str(candidate)[:200])
    return out


def decide(
    db: Session,
    *,
    workspace_id: int,
    contact_id: int | None,
    text: str,
    history: Sequence = (),
    pending: dict | None = None,
    use_llm: bool = True,
) -> Decision:
    """Decide what to do with one customer message (see the module's docstring); the Decision says why."""
    started = time.perf_counter()
    turns = _turns(history)
    language = detect(text, default=next((detect(t["text"]) for t in reversed(turns) if t.get("author") == "customer" and t.get("text")), "zh-TW"))
    config = get_config(db, workspace_id=workspace_id)
    decision = _decide(db, workspace_id, contact_id, text or "", turns, pending, config, language, use_llm)
    decision.language = decision.language or language
    decision.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    if pending and decision.pending_action is None:
        decision.clear_pending = True
    return decision


def _decide(db, workspace_id, contact_id, text, turns, pending, config, language, use_llm) -> Decision:
    if not text.strip():
        return Decision(action="handoff", handoff_reason="low_confidence", reason="the message has no text (sticker, image…)",
                        language=language, answer=None)
    triggered = _triggers(db, workspace_id, contact_id, text, turns, config, language)
    if triggered:
        return triggered
    if pending:
        confirmed = _pending(db, workspace_id, contact_id, text, pending, language)
        if confirmed:
            return confirmed
    if use_llm and config["llm"]:
        from tutti.converse.agents import llm as agent_llm

        client = agent_llm.client(db, workspace_id=workspace_id)
        if client is not None:
            return agent_llm.decide(db, client, workspace_id=workspace_id, contact_id=contact_id, text=text, turns=turns,
                                    config=config, language=language)
    try:
        match = _knowledge(db, workspace_id, text)
    except ImportError:
        match = None
    except Exception as error:
        log.exception("knowledge match failed", extra={"workspace_id": workspace_id})
        match = None
        knowledge_error = str(error)[:200]
    else:
        knowledge_error = None
    intent = _intent(db, workspace_id, contact_id, text)
    floor = config["min_confidence"]
    in_scope = (match is not None and match.in_scope and match.item_id is not None
                and (floor is None or float(match.confidence or 0) >= floor))
    policy = bool(_POLICY_QUESTION.search(signals.fold(text)))
    # their own data, plainly asked for: a tool — unless it is a question about how things work that the
    # knowledge base answers ("how do I cancel my order"); words that only suggest a tool ("推薦", "等級")
    # lose to an in-scope knowledge answer
    if intent is not None and policy and (not intent.strong or intent.name == "my_profile"):
        intent = None  # "will my tier drop?" is a question for the knowledge base or a person, not a read-out of the tier
    if intent is not None and intent.strong and not (in_scope and policy):
        return _tool(db, workspace_id, contact_id, text, language, intent)
    if in_scope:
        return _answer(db, workspace_id, match, config, language)
    tool = _tool(db, workspace_id, contact_id, text, language, intent)
    if tool:
        return tool
    if match is None:
        why = f"the knowledge base failed: {knowledge_error}" if knowledge_error else "there is no knowledge base"
        return _handoff("knowledge_error" if knowledge_error else "low_confidence", why, language)
    return _answer(db, workspace_id, match, config, language)
