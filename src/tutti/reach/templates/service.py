"""Templates: validation, compiling for sends, contexts, CRUD, preview as a contact and test sends.

The contract other parts build on (campaign sending, journeys):
- `validate(channel, content) -> content` raises InvalidInput naming the path of the first problem
  (`messages[1].template.actions[4]`), with every problem in `details`;
- `compile_content(channel, content) -> Renderer`; `Renderer.render(context) -> payload` per recipient;
- `load_contexts(db, *, workspace_id, contact_ids) -> {contact id: variables}`, set-based.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.errors import InvalidInput, NotFound
from tutti.reach.templates import email, line, sms
from tutti.reach.templates.contexts import VARIABLES, load_contexts, sample_context  # noqa: F401 - part of the contract
from tutti.reach.templates.models import TEMPLATE_CHANNELS, Template
from tutti.reach.templates.problems import Problems
from tutti.reach.templates.render import Renderer

MAX_NAME = 200
_VALIDATORS = {"line": line.validate, "email": email.validate, "sms": sms.validate}


def check_channel(channel: str) -> str:
    if channel not in TEMPLATE_CHANNELS:
        raise InvalidInput(f"unknown channel '{channel}'; use one of {', '.join(TEMPLATE_CHANNELS)}", field="channel")
    return channel


def validate(channel: str, content: dict) -> dict:
    """The content, checked against the channel's limits and compiled once to catch Jinja2 syntax errors."""
    check_channel(channel)
    if not isinstance(content, dict):
        raise InvalidInput("content must be an object", field="content")
    problems = Problems()
    cleaned = _VALIDATORS[channel](content, problems)
    problems.raise_if_any()
    compile_content(channel, cleaned)
    return cleaned


def payload_of(channel: str, content: dict) -> dict:
    """What is rendered: the content plus what every message of the channel carries (e-mail: the text part,
    the unsubscribe link and headers)."""
    if channel == "email":
        return email.finish(content)
    if channel == "sms":
        return {"text": content.get("text") or ""}
    return {"messages": content.get("messages") or []}


def compile_content(channel: str, content: dict) -> Renderer:
    """Compile once, render per recipient. Raises InvalidInput naming the field and line of a syntax error."""
    check_channel(channel)
    return Renderer(channel, payload_of(channel, content))


def describe(channel: str, content: dict) -> dict:
    """Facts shown beside the editor: SMS parts, LINE message count, e-mail parts."""
    if channel == "sms":
        return {"sms": sms.segments(content.get("text") or "")}
    if channel == "line":
        return {"messages": len(content.get("messages") or [])}
    return {"has_html": bool(content.get("html")), "has_text": bool(content.get("text"))}


# --- stored templates ---------------------------------------------------------------------------


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a template name needs 1 to {MAX_NAME} characters", field="name")
    return name


def get_template(db: Session, *, workspace_id: int, template_id: int) -> Template:
    template = db.get(Template, template_id)
    if template is None or template.workspace_id != workspace_id:
        raise NotFound(f"no template {template_id} in this workspace", field="template_id")
    return template


def list_templates(db: Session, *, workspace_id: int, channel: str | None = None) -> list[Template]:
    query = select(Template).where(Template.workspace_id == workspace_id)
    if channel:
        query = query.where(Template.channel == check_channel(channel))
    return list(db.scalars(query.order_by(Template.updated_at.desc(), Template.id.desc())))


def count_templates(db: Session, *, workspace_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Template).where(Template.workspace_id == workspace_id)) or 0


def create_template(db: Session, *, workspace_id: int, name: str, channel: str, content: dict, actor: Actor) -> Template:
    content = validate(channel, content)
    template = Template(workspace_id=workspace_id, name=_name(name), channel=channel, content=content)
    db.add(template)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="template.create", target_kind="template",
                 target_id=template.id, detail={"name": template.name, "channel": channel})
    return template


def update_template(db: Session, *, workspace_id: int, template_id: int, actor: Actor, name: str | None = None,
                    content: dict | None = None) -> Template:
    template = get_template(db, workspace_id=workspace_id, template_id=template_id)
    # everything is checked before anything changes: a refused update leaves the template as it was
    new_name = _name(name) if name is not None else template.name
    new_content = validate(template.channel, content) if content is not None else template.content
    template.name, template.content = new_name, new_content
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="template.update", target_kind="template",
                 target_id=template.id, detail={"name": template.name})
    return template


def delete_template(db: Session, *, workspace_id: int, template_id: int, actor: Actor) -> None:
    template = get_template(db, workspace_id=workspace_id, template_id=template_id)
    db.delete(template)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="template.delete", target_kind="template",
                 target_id=template_id, detail={"name": template.name})


# --- preview and test send ----------------------------------------------------------------------


def context_for(db: Session, *, workspace_id: int, contact_id: int | None) -> dict:
    if contact_id is None:
        return sample_context(workspace_id)
    found = load_contexts(db, workspace_id=workspace_id, contact_ids=[contact_id])
    if contact_id not in found:
        raise NotFound(f"no contact {contact_id} in this workspace", field="contact_id")
    return found[contact_id]


def preview(db: Session, *, workspace_id: int, channel: str, content: dict, contact_id: int | None = None) -> dict:
    """The message as one contact (or a made-up one) would get it: {"payload", "context", "info"}.
    Raises InvalidInput (with every problem in details) when the content is not valid."""
    content = validate(channel, content)
    context = context_for(db, workspace_id=workspace_id, contact_id=contact_id)
    payload = compile_content(channel, content).render(context)
    info = describe(channel, payload if channel == "sms" else content)
    return {"payload": payload, "context": context, "info": info}


def test_send(db: Session, *, workspace_id: int, channel: str, content: dict, to: str, actor: Actor,
              contact_id: int | None = None, channel_id: int | None = None) -> dict:
    """Send the message once to a tester's address through the workspace's channel. Not tracked, not
    counted in any campaign. Returns {"status", "reason", "provider_id"}."""
    from tutti.channels import service as channels
    from tutti.channels.base import Outgoing

    to = (to or "").strip()
    if not to:
        raise InvalidInput("a tester address is required", field="to")
    rendered = preview(db, workspace_id=workspace_id, channel=channel, content=content, contact_id=contact_id)["payload"]
    if channel_id is None:
        found = channels.default_channel(db, workspace_id=workspace_id, kind=channel)
        if found is None:  # an outcome, not a request error: the test send was made and could not go out
            return {"status": "failed", "reason": f"no {channel} channel is connected to this workspace", "provider_id": None}
        channel_id = found.id
    if channel == "email":
        rendered["subject"] = "[TEST] " + rendered["subject"]
    adapter = channels.adapter_for(db, workspace_id=workspace_id, channel_id=channel_id)
    try:
        outcome = adapter.send([Outgoing(key=str(uuid.uuid4()), to=to, payload=rendered)])[0]
    finally:
        adapter.close()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="template.test_send", target_kind="channel",
                 target_id=channel_id, detail={"to": to, "status": outcome.status, "reason": outcome.reason})
    return {"status": outcome.status, "reason": outcome.reason, "provider_id": outcome.provider_id}
