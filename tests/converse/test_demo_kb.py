"""The demo brand's knowledge base and its eval data are consistent, and the demo build loads it with teams,
people and past conversations the inbox can show."""

import importlib.util
import json
from collections import Counter
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from tutti.audience import demo
from tutti.audience.models import Identity
from tutti.converse.conversations.models import AgentDecision, Conversation, Message, Team, TeamMember
from tutti.converse.knowledge import gaps
from tutti.converse.knowledge.models import KnowledgeItem, KnowledgePhrasing
from tutti.platform.models import Membership

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "src/tutti/converse/knowledge/data/faq.jsonl"
OUT_OF_SCOPE = json.loads((ROOT / "src/tutti/converse/knowledge/data/out_of_scope_demo.jsonl").read_text(encoding="utf-8"))


def test_the_kb_data_checker_finds_no_problem(capsys):
    spec = importlib.util.spec_from_file_location("check_kb_data", ROOT / "evals/check_kb_data.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    assert checker.main() == 0, capsys.readouterr().out
    assert "PROBLEM" not in capsys.readouterr().out


def test_the_knowledge_eval_names_a_missing_file_and_runs_nothing(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "questions.jsonl"
    run = subprocess.run([sys.executable, str(ROOT / "evals/knowledge.py"), "--test", str(missing)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and f"no such file: {missing}" in run.stderr and not run.stdout


def test_the_demo_build_loads_the_kb_teams_and_conversations(database):
    items = [json.loads(line) for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    info = demo.build(database, contacts=300, seed=7, today=date(2025, 12, 31))
    w = info.workspace_id
    with database.session() as db:
        stored = dict(db.execute(select(KnowledgeItem.external_id, KnowledgeItem.team).where(
            KnowledgeItem.workspace_id == w, KnowledgeItem.kind != "out_of_scope")).all())
        assert len(stored) == len(items) >= 170
        phrasings = db.scalar(select(func.count()).select_from(KnowledgePhrasing).where(KnowledgePhrasing.workspace_id == w))
        assert phrasings == sum(len(item["questions"]) for item in items + [OUT_OF_SCOPE])
        # the brand's own out-of-scope examples are one item, where the gaps page's "Mark out of scope" adds
        assert db.scalar(select(KnowledgeItem.kind).where(KnowledgeItem.workspace_id == w,
                                                         KnowledgeItem.external_id == gaps.OUT_OF_SCOPE_ID)) == "out_of_scope"
        team_names = dict(db.execute(select(Team.name, Team.is_default).where(Team.workspace_id == w)).all())
        # every item hands off to a team that exists, so the router's team lookup by name finds it
        assert set(stored.values()) == set(team_names)
        assert team_names["客服 Support"] is True and sum(team_names.values()) == 1
        assert db.scalar(select(func.count()).select_from(TeamMember).where(TeamMember.workspace_id == w)) == 4
        assert db.scalar(select(func.count()).select_from(Membership).where(Membership.workspace_id == w,
                                                                              Membership.role == "agent")) == 4

        conversations = list(db.scalars(select(Conversation).where(Conversation.workspace_id == w)))
        statuses = Counter(c.status for c in conversations)
        assert len(conversations) >= 30
        assert statuses["resolved"] >= 20 and statuses["waiting"] >= 2 and statuses["assigned"] >= 1
        for c in conversations:
            assert c.created_at <= c.last_message_at and c.first_customer_message_at == c.created_at
            assert (c.status == "waiting") == (c.assignee_user_id is None and not c.handled_by_bot_only)
            assert c.created_at.date() < date(2025, 12, 31)
        line_contacts = {c.contact_id for c in conversations if c.channel == "line"}
        followers = set(db.scalars(select(Identity.contact_id).where(Identity.workspace_id == w, Identity.kind == "line_uid",
                                                                     Identity.contact_id.in_(line_contacts))))
        assert line_contacts and line_contacts == followers  # a person's reply on LINE can reach them
        decisions = Counter(db.scalars(select(AgentDecision.action).where(AgentDecision.workspace_id == w)))
        assert decisions["answer"] >= 15 and decisions["tool"] >= 1 and decisions["handoff"] >= 5
        # an answered conversation shows the item's answer with its source
        answer = db.scalar(select(Message.text).join(AgentDecision, AgentDecision.conversation_id == Message.conversation_id)
                           .join(KnowledgeItem, KnowledgeItem.id == AgentDecision.knowledge_id)
                           .where(Message.workspace_id == w, Message.author == "bot", KnowledgeItem.external_id == "ship-001"))
        assert "NT$990" in answer and "來源" in answer
        # hand-offs carry a note for the people who take them
        assert db.scalar(select(func.count()).select_from(Message).where(Message.workspace_id == w, Message.kind == "note")) >= 5
