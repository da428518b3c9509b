"""The `tutti` command: workspace and user creation, privacy export and erase, and configuration errors."""

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tutti.audience import contacts
from tutti.audience.models import Contact, Identity
from tutti.cli import app
from tutti.platform.audit import Actor
from tutti.platform.config import reset_settings
from tutti.platform.models import AuditLog, Membership, User


@pytest.fixture
def tutti(database_url, database, monkeypatch, tmp_path):
    """Run `tutti …` against the test database; returns the result."""
    monkeypatch.setenv("TUTTI_DATABASE_URL", database_url)
    monkeypatch.setenv("TUTTI_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    runner = CliRunner()

    def run(*args, env=None, input=None):
        reset_settings()
        result = runner.invoke(app, list(args), env=env, input=input)
        reset_settings()
        return result

    yield run
    reset_settings()


def test_workspace_user_export_and_erase(tutti, database):
    created = tutti("workspace", "create", "小島咖啡 Island Coffee")
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    assert info["name"] == "小島咖啡 Island Coffee" and info["api_key"].startswith("tk_") and info["write_key"].startswith("wk_")
    workspace_id = info["workspace_id"]

    user = tutti("user", "create", "Mei@Example.com", "--workspace", str(workspace_id), "--role", "admin", "--name", "Mei",
                 env={"TUTTI_PASSWORD": "a long enough password"})
    assert user.exit_code == 0, user.output
    assert json.loads(user.stdout) == {"user_id": json.loads(user.stdout)["user_id"], "email": "mei@example.com",
                                       "workspace_id": workspace_id, "role": "admin"}
    with database.session() as db:
        account = db.scalar(select(User).where(User.email == "mei@example.com"))
        assert account.password_hash and "a long enough password" not in account.password_hash
        assert db.get(Membership, (workspace_id, account.id)).role == "admin"
        person, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "lin@example.com"},
                                    profile={"name": "林美玲", "city": "台北市"}, actor=Actor.cli())

    exported = tutti("export", "--contact", str(person.id), "--workspace", str(workspace_id))
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.stdout)
    assert data["contact_id"] == person.id and data["profile"]["name"] == "林美玲"
    assert data["identities"][0]["value"] == "lin@example.com"

    erased = tutti("erase", "--contact", str(person.id), "--workspace", str(workspace_id), "--yes")
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.stdout)["removed"]["identities"] == 1
    with database.session() as db:
        contact = db.get(Contact, person.id)
        assert contact.erased_at is not None and contact.name is None
        assert db.scalar(select(Identity.id).where(Identity.contact_id == person.id)) is None
        actions = set(db.scalars(select(AuditLog.action).where(AuditLog.workspace_id == workspace_id, AuditLog.actor_kind == "cli")))
        assert {"contact.export", "contact.erase", "api_key.create", "member.set_role"} <= actions

    again = tutti("erase", "--contact", str(person.id), "--workspace", str(workspace_id), "--yes")
    assert again.exit_code == 1 and "erased" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    missing = tutti("export", "--contact", "999999", "--workspace", str(workspace_id))
    assert missing.exit_code == 1 and "no contact with id 999999" in missing.stderr


def test_erase_asks_before_erasing(tutti, database):
    info = json.loads(tutti("workspace", "create", "Shop").stdout)
    with database.session() as db:
        person, _ = contacts.upsert(db, workspace_id=info["workspace_id"], identities={"email": "a@example.com"}, actor=Actor.cli())
    declined = tutti("erase", "--contact", str(person.id), "--workspace", str(info["workspace_id"]), input="n\n")
    assert declined.exit_code == 1 and "Erase contact" in declined.output
    with database.session() as db:
        assert db.get(Contact, person.id).erased_at is None


@pytest.mark.parametrize("url, words", [
    ("postgresql://nobody@127.0.0.1:1/nothing", "cannot reach the database"),
    ("mysql://root@localhost/tutti", "TUTTI_DATABASE_URL"),
])
def test_a_bad_database_url_is_one_line_and_exit_code_2(tutti, url, words):
    result = tutti("workspace", "create", "Shop", env={"TUTTI_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tutti: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_kb_calibrate_replaces_the_questions_all_or_nothing_and_refits(tutti, tmp_path):
    workspace_id = json.loads(tutti("workspace", "create", "Shop").stdout)["workspace_id"]
    kb = tmp_path / "kb.jsonl"
    kb.write_text("\n".join(json.dumps({"id": f"item-{k}", "answer": f"answer {k}", "questions": [f"問題 {k}", f"question {k}"]})
                            for k in range(3)), encoding="utf-8")
    imported = tutti("kb", "import", str(kb), "--workspace", str(workspace_id), "--no-embed")
    assert imported.exit_code == 0, imported.output
    bad = tmp_path / "questions.jsonl"
    bad.write_text(json.dumps({"question": "問題一", "expected": "item-1"}) + "\n"
                   + json.dumps({"question": "別的", "expected": "item-9"}) + "\n", encoding="utf-8")
    refused = tutti("kb", "calibrate", str(bad), "--workspace", str(workspace_id))
    assert refused.exit_code != 0 and "row 2: no item 'item-9' in this workspace" in refused.output
    good = tmp_path / "questions.csv"
    good.write_text("question,expected\n問題一,item-1\n你們有賣貓砂嗎,\n", encoding="utf-8")
    done = tutti("kb", "calibrate", str(good), "--workspace", str(workspace_id))
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    # three items are too few to fit on: the default calibration, with both questions embedded
    assert summary["questions"] == 2 and summary["in_scope"] == 1 and summary["out_of_scope"] == 1
    assert summary["embedded"] >= 2 and summary["threshold"] is not None
