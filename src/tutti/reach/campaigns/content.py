"""What each recipient receives: the variant's message for the channel, rendered for the contact, its links
rewritten to tracked ones. Built once per (variant, channel) when a sender starts.

Rendering is memoised on the variables the message actually uses: a message that says
`{{ city | default("台灣") }}` renders once per city, not once per person, and recipients with the same
payload can then share one provider request (LINE multicast). A message with tracked links differs per
recipient (each link carries the delivery), so it is never shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from jinja2 import meta
from sqlalchemy.orm import Session

from tutti.platform.errors import InvalidInput
from tutti.reach.campaigns.models import Campaign, Variant

MEMO_LIMIT = 50_000  # distinct renders kept per message; beyond that the memo starts again


def _templates():
    from tutti.reach.templates import service

    return service


# Variables read straight from the contact row: when a message uses only these, the sender reads them in
# one narrow query instead of every variable (identities, tags, last order) — a 1M broadcast saved.
PROFILE_VARIABLES = frozenset({"contact_id", "name", "first_name", "gender", "locale", "timezone", "city"})


def load_contexts(db: Session, *, workspace_id: int, contact_ids: list[int], variables: frozenset | None = None) -> dict[int, dict]:
    """The variables of these contacts; only `variables` when given and all of them are profile fields."""
    if variables is not None and variables <= PROFILE_VARIABLES:
        fields, values = profile_values(db, workspace_id=workspace_id, contact_ids=contact_ids, variables=variables)
        return {contact_id: profile_context(contact_id, fields, row) for contact_id, row in values.items()}
    return _templates().load_contexts(db, workspace_id=workspace_id, contact_ids=contact_ids)


def profile_values(db: Session, *, workspace_id: int, contact_ids: list[int],
                   variables: frozenset) -> tuple[tuple[str, ...], dict[int, tuple]]:
    """The contact-row fields these profile `variables` need, and each contact's values of them as a tuple
    (erased and missing contacts are left out). A sender renders once per distinct tuple: building a
    context dict per recipient cost more than the whole database read."""
    from sqlalchemy import select

    from tutti.audience.models import Contact
    from tutti.reach.campaigns.idlist import in_ids

    fields = tuple(sorted((variables - {"first_name"}) | ({"name"} if "first_name" in variables else set())))
    if not set(fields) - {"contact_id"}:  # nothing to read: the id is all there is
        return fields, {contact_id: (contact_id,) * len(fields) for contact_id in contact_ids}
    columns = [Contact.id if field == "contact_id" else getattr(Contact, field) for field in fields]
    # the driver's own tuples, through the connection: the ORM session would build each row through its
    # loader, and even Core's row objects cost more than the dict built from them
    result = db.connection().execute(select(Contact.id, *columns).where(
        Contact.workspace_id == workspace_id, in_ids(Contact.id, contact_ids, db.get_bind().dialect.name),
        Contact.erased_at.is_(None)))
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    return fields, {row[0]: row[1:] for row in rows}


def profile_context(contact_id: int, fields: tuple[str, ...], values: tuple | None) -> dict:
    """The template context of one contact's profile values (profile_values); empty values are left out, so
    a template's fallback applies, and `first_name` comes from the name."""
    from tutti.reach.templates.contexts import _first_name

    context: dict = {"contact_id": contact_id}
    for key, value in zip(fields, values or (), strict=False):
        if value not in (None, ""):
            context[key] = value
    if context.get("name"):
        context["first_name"] = _first_name(context["name"])
    return context


def content_for(db: Session, *, campaign: Campaign, variant: Variant, kind: str) -> dict:
    """The variant's content for a channel kind: inline, else its template's."""
    inline = (variant.content or {}).get(kind)
    if inline:
        return inline
    template_id = (variant.template_ids or {}).get(kind)
    if template_id is None:
        raise InvalidInput(f"variant '{variant.name}' has no {kind} message; add one or remove {kind} from the channels",
                           field=f"variants.{variant.position}.content.{kind}")
    from tutti.reach.templates.models import Template

    template = db.get(Template, int(template_id))
    if template is None or template.workspace_id != campaign.workspace_id:
        raise InvalidInput(f"template {template_id} of variant '{variant.name}' does not exist",
                           field=f"variants.{variant.position}.template_ids.{kind}")
    if template.channel != kind:
        raise InvalidInput(f"template {template_id} is a {template.channel} template, not {kind}",
                           field=f"variants.{variant.position}.template_ids.{kind}")
    return template.content


def _variables(content) -> frozenset[str]:
    """Top-level names the message's Jinja2 uses (`contact.name` counts as `contact`)."""
    from tutti.reach.templates.render import TEXT_ENV

    names: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
        elif isinstance(value, str) and ("{{" in value or "{%" in value):
            names.update(meta.find_undeclared_variables(TEXT_ENV.parse(value)))

    walk(content)
    return frozenset(names)


@dataclass
class Message:
    """One variant's message on one channel, ready to render for many recipients."""

    renderer: object
    variables: tuple[str, ...]
    rewriter: object | None  # tracking.links.LinkRewriter when the message has links
    memo: dict = field(default_factory=dict)

    @property
    def per_recipient(self) -> bool:
        """True when every recipient's payload differs (tracked links): never grouped."""
        return self.rewriter is not None

    def payload(self, context: dict, delivery_id: int) -> dict:
        memo_key = orjson.dumps([context.get(name) for name in self.variables], option=orjson.OPT_NON_STR_KEYS)
        rendered = self.memo.get(memo_key)
        if rendered is None:
            rendered = self._remember(memo_key, context)
        return self._tracked(rendered, delivery_id)

    def payload_of(self, fields: tuple[str, ...], values: tuple | None, contact_id: int, delivery_id: int) -> dict:
        """The payload for a contact's profile values (profile_values): memoised on the values themselves,
        so a recipient whose values were seen before costs one dictionary lookup."""
        memo_key = (fields, values)
        rendered = self.memo.get(memo_key)
        if rendered is None:
            rendered = self._remember(memo_key, profile_context(contact_id, fields, values))
        return self._tracked(rendered, delivery_id)

    def shared_payloads(self, fields: tuple[str, ...], values: list[tuple | None]) -> list[dict] | None:
        """The payload of each of many recipients' profile values when it depends on those values alone (no
        tracked link, no contact id): one render per distinct value, the rest is lookups done in C. None
        when it does not (then payload_of, one recipient at a time)."""
        if self.rewriter is not None or "contact_id" in self.variables:
            return None
        memo = self.memo
        new = {v for v in values if (fields, v) not in memo} if len(memo) else set(values)
        if len(memo) + len(new) > MEMO_LIMIT:
            memo.clear()
            new = set(values)
        for v in new:
            memo[(fields, v)] = self.renderer.render(profile_context(None, fields, v))
        return [memo[(fields, v)] for v in values]

    def stored_payloads(self, stored: list[str | None]) -> list[dict] | None:
        """The payload of each recipient from the profile values the audience snapshot stored with its
        delivery (delivery.profile_values, a JSON object text): one render per distinct text, the rest is
        lookups. None when the message has a tracked link, or a row has no stored values, or they lack a
        variable of the message (then the contacts are read: profile_values)."""
        if self.rewriter is not None:
            return None
        distinct = set(stored)
        if None in distinct:
            return None
        memo = self.memo  # its other keys are bytes and tuples: never equal to a str
        new = distinct.difference(memo)
        if len(memo) + len(new) > MEMO_LIMIT:
            memo.clear()
            new = distinct
        needed = set(self.variables)
        for text in new:
            values = orjson.loads(text)
            if not needed <= values.keys():
                return None
            memo[text] = self.renderer.render(profile_context(None, tuple(values), tuple(values.values())))
        return list(map(memo.__getitem__, stored))

    def _remember(self, memo_key, context: dict) -> dict:
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        rendered = self.memo[memo_key] = self.renderer.render(context)
        return rendered

    def _tracked(self, rendered: dict, delivery_id: int) -> dict:
        if self.rewriter is not None:  # it rewrites in place: never the memoised payload itself
            return self.rewriter.rewrite(orjson.loads(orjson.dumps(rendered)), delivery_id)
        return rendered


def prepare(db: Session, *, campaign: Campaign, variant: Variant, kind: str) -> Message:
    content = content_for(db, campaign=campaign, variant=variant, kind=kind)
    renderer = _templates().compile_content(kind, content)
    rendered = getattr(renderer, "skeleton", content)  # what is rendered (e-mail adds its unsubscribe link)
    rewriter = None
    try:
        from tutti.reach.tracking import links
    except ImportError:  # tracking not installed: links go out as written
        links = None
    if links is not None:
        rewriter = links.prepare(db, workspace_id=campaign.workspace_id, campaign_id=campaign.id, variant_id=variant.id,
                                 payload=rendered, channel=kind)
        if not (getattr(rewriter, "positions", True) or getattr(rewriter, "open_pixel", False)):
            rewriter = None  # nothing to track: the payload is the same for everyone who renders alike
    return Message(renderer=renderer, variables=tuple(sorted(_variables(rendered))), rewriter=rewriter)
