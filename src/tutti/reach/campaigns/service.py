"""Campaigns: create and edit drafts, schedule, send, pause, resume, cancel, and follow the progress.

A campaign is edited only as a draft. Sending (now, or when the tick finds its time has come) moves it
to `sending` and queues the send job; the job takes the audience first (`audience.take`, set-based, in
one transaction) and then sends (`engine`). Every state change is recorded in the audit log.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete as sql_delete
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.reach.campaigns import audience
from tutti.reach.campaigns.idlist import not_in_ids
from tutti.reach.campaigns.models import CHANNEL_KINDS, Campaign, Delivery, DeliveryBatch, Variant

EDITABLE = ("name", "kind", "audience", "channels", "channel_ids", "holdout_percent", "scheduled_at", "quiet_hours",
            "frequency_cap", "attribution_days", "costs", "variants")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_EXPLICIT_CONTACTS = 10_000


# --- validation -----------------------------------------------------------------------------------


def _ids(value, field: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise InvalidInput(f"{field} must be a list of ids", field=field)
    return list(dict.fromkeys(value))


def _check_segments(db: Session, workspace_id: int, ids: list[int], field: str) -> None:
    if not ids:
        return
    try:
        from tutti.reach.segments import service as segments
    except ImportError:
        return
    for segment_id in ids:
        try:
            segments.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        except NotFound:
            raise NotFound(f"segment {segment_id} not found", field=field) from None


def _check_contacts(db: Session, workspace_id: int, ids: list[int]) -> None:
    from tutti.audience.models import Contact

    if not ids:
        return
    found = set(db.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"contact {missing[0]} not found", field="audience.contact_ids")


def _audience(db: Session, workspace_id: int, value) -> dict:
    if value is None:
        return {"segment_ids": [], "exclude_segment_ids": [], "contact_ids": []}
    if not isinstance(value, dict):
        raise InvalidInput("audience must be an object with segment_ids and exclude_segment_ids", field="audience")
    unknown = set(value) - {"segment_ids", "exclude_segment_ids", "contact_ids"}
    if unknown:
        raise InvalidInput(f"audience.{min(unknown)} is not known; use segment_ids, exclude_segment_ids, contact_ids",
                           field=f"audience.{min(unknown)}")
    out = {key: _ids(value.get(key), f"audience.{key}") for key in ("segment_ids", "exclude_segment_ids", "contact_ids")}
    if len(out["contact_ids"]) > MAX_EXPLICIT_CONTACTS:
        raise InvalidInput(f"at most {MAX_EXPLICIT_CONTACTS} explicit contacts; use a segment", field="audience.contact_ids")
    _check_contacts(db, workspace_id, out["contact_ids"])
    _check_segments(db, workspace_id, out["segment_ids"], "audience.segment_ids")
    _check_segments(db, workspace_id, out["exclude_segment_ids"], "audience.exclude_segment_ids")
    return out


def _channels(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("channels must list at least one of line, sms, email, in the order to try them", field="channels")
    for kind in value:
        if kind not in CHANNEL_KINDS:
            raise InvalidInput(f"unknown channel '{kind}'; use line, sms or email", field="channels")
    if len(set(value)) != len(value):
        raise InvalidInput("each channel may appear once in channels", field="channels")
    return list(value)


def _channel_ids(db: Session, workspace_id: int, value) -> dict:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("channel_ids must map a channel kind to a channel id", field="channel_ids")
    from tutti.channels.service import get_channel

    out = {}
    for kind, channel_id in value.items():
        if kind not in CHANNEL_KINDS:
            raise InvalidInput(f"unknown channel '{kind}'", field=f"channel_ids.{kind}")
        if not isinstance(channel_id, int) or isinstance(channel_id, bool):
            raise InvalidInput(f"channel_ids.{kind} must be a channel id", field=f"channel_ids.{kind}")
        try:
            channel = get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
        except NotFound:
            raise InvalidInput(f"channel {channel_id} does not exist", field=f"channel_ids.{kind}") from None
        if channel.kind != kind:
            raise InvalidInput(f"channel {channel_id} is a {channel.kind} channel, not {kind}", field=f"channel_ids.{kind}")
        out[kind] = channel_id
    return out


def _number(value, field: str, low: float, high: float, *, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not float(value).is_integer()):
        raise InvalidInput(f"{field} must be a {'whole ' if whole else ''}number", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low:g} and {high:g}", field=field)
    return int(value) if whole else float(value)


def _quiet_hours(value) -> dict | None:
    if not value:
        return None
    if not isinstance(value, dict) or not _CLOCK.match(str(value.get("start", ""))) or not _CLOCK.match(str(value.get("end", ""))):
        raise InvalidInput("quiet_hours must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} in the workspace's time zone",
                           field="quiet_hours")
    return {"start": value["start"], "end": value["end"]}


def _frequency_cap(value) -> dict | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("frequency_cap must be {\"max\": N, \"days\": D}", field="frequency_cap")
    return {"max": _number(value.get("max"), "frequency_cap.max", 1, 1000, whole=True),
            "days": _number(value.get("days", 7), "frequency_cap.days", 1, 365, whole=True)}


def _costs(value) -> dict:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("costs must map a channel kind to a price per message", field="costs")
    out = {}
    for kind, price in value.items():
        if kind not in CHANNEL_KINDS:
            raise InvalidInput(f"unknown channel '{kind}'", field=f"costs.{kind}")
        out[kind] = _number(price, f"costs.{kind}", 0, 1_000_000)
    return out


def _scheduled_at(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z
        except ValueError:
            raise InvalidInput("scheduled_at must be an ISO 8601 time, e.g. 2026-12-01T10:00:00+08:00", field="scheduled_at") from None
    if not isinstance(value, datetime):
        raise InvalidInput("scheduled_at must be a time", field="scheduled_at")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _variants(db: Session, workspace_id: int, value, channels: list[str]) -> list[dict]:
    if not value:
        value = [{"name": "A", "split_percent": 100}]
    if not isinstance(value, list) or len(value) > 10:
        raise InvalidInput("variants must be a list of at most 10", field="variants")
    out, total = [], 0.0
    for position, raw in enumerate(value):
        where = f"variants.{position}"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        name = str(raw.get("name") or chr(ord("A") + position)).strip()[:100]
        split = _number(raw.get("split_percent", 100 if len(value) == 1 else None), f"{where}.split_percent", 0, 100)
        total += split
        template_ids, content = raw.get("template_ids") or {}, raw.get("content") or {}
        if not isinstance(template_ids, dict) or not isinstance(content, dict):
            raise InvalidInput(f"{where}: template_ids and content map a channel kind to a template id or content", field=where)
        for kind in set(template_ids) | set(content):
            if kind not in CHANNEL_KINDS:
                raise InvalidInput(f"unknown channel '{kind}'", field=f"{where}.content.{kind}")
        clean_content = {}
        for kind, body in content.items():
            clean_content[kind] = _validate_content(kind, body, f"{where}.content.{kind}")
        out.append({"name": name, "position": position, "split_percent": split,
                    "template_ids": {k: int(v) for k, v in template_ids.items() if v is not None}, "content": clean_content})
    if abs(total - 100) > 0.001:
        raise InvalidInput(f"the variants' split_percent must add up to 100 (they add up to {total:g})", field="variants")
    return out


def _validate_content(kind: str, body, field: str) -> dict:
    try:
        from tutti.reach.templates import service as templates
    except ImportError:
        if not isinstance(body, dict):
            raise InvalidInput(f"{field} must be an object", field=field) from None
        return body
    try:
        return templates.validate(kind, body)
    except InvalidInput as error:
        error.field = f"{field}.{error.field}" if error.field else field
        raise


# --- drafts ---------------------------------------------------------------------------------------


def create(db: Session, *, workspace_id: int, data: dict, actor: Actor) -> Campaign:
    name = str(data.get("name") or "").strip()
    if not name:
        raise InvalidInput("name is required", field="name")
    campaign = Campaign(workspace_id=workspace_id, name=name[:200], status="draft", key_namespace=uuid.uuid4().hex,
                        created_by=actor.id if actor.kind == "user" else None, channels=["line"], audience=_audience(db, workspace_id, None),
                        channel_ids={}, costs={}, skipped={}, holdout_percent=0, attribution_days=7)
    db.add(campaign)
    db.flush()
    try:
        _apply(db, campaign, {"channels": ["line"], **data})
    except Exception:  # nothing of a refused campaign stays, even when the caller's transaction commits (pages)
        db.execute(sql_delete(Variant).where(Variant.campaign_id == campaign.id))
        db.delete(campaign)
        db.flush()
        raise
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.create", target_kind="campaign",
                 target_id=campaign.id, detail={"name": campaign.name})
    return campaign


def _apply(db: Session, campaign: Campaign, data: dict) -> None:
    unknown = set(data) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"'{min(unknown)}' cannot be set on a campaign", field=min(unknown))
    wid = campaign.workspace_id
    if "name" in data:
        name = str(data["name"] or "").strip()
        if not name:
            raise InvalidInput("name must not be empty", field="name")
        campaign.name = name[:200]
    if "kind" in data:
        if data["kind"] not in ("marketing", "transactional"):
            raise InvalidInput("kind must be marketing or transactional", field="kind")
        campaign.kind = data["kind"]
    if "audience" in data:
        campaign.audience = _audience(db, wid, data["audience"])
    if "channels" in data:
        campaign.channels = _channels(data["channels"])
    if "channel_ids" in data:
        campaign.channel_ids = _channel_ids(db, wid, data["channel_ids"])
    if "holdout_percent" in data:
        campaign.holdout_percent = _number(data["holdout_percent"] or 0, "holdout_percent", 0, 90)
    if "scheduled_at" in data:
        campaign.scheduled_at = _scheduled_at(data["scheduled_at"])
    if "quiet_hours" in data:
        campaign.quiet_hours = _quiet_hours(data["quiet_hours"])
    if "frequency_cap" in data:
        campaign.frequency_cap = _frequency_cap(data["frequency_cap"])
    if "attribution_days" in data:
        campaign.attribution_days = _number(data["attribution_days"], "attribution_days", 1, 365, whole=True)
    if "costs" in data:
        campaign.costs = _costs(data["costs"])
    if "variants" in data or not _variants_of(db, campaign.id):
        db.execute(sql_delete(Variant).where(Variant.campaign_id == campaign.id).execution_options(synchronize_session=False))
        for spec in _variants(db, wid, data.get("variants"), campaign.channels):
            db.add(Variant(workspace_id=wid, campaign_id=campaign.id, **spec))
        db.flush()
    campaign.updated_at = utcnow()


def _variants_of(db: Session, campaign_id: int) -> list[Variant]:
    return list(db.scalars(select(Variant).where(Variant.campaign_id == campaign_id).order_by(Variant.position, Variant.id)))


def get(db: Session, *, workspace_id: int, campaign_id: int, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    if lock:
        query = query.with_for_update()
    campaign = db.scalar(query)
    if campaign is None or campaign.workspace_id != workspace_id:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def list_campaigns(db: Session, *, workspace_id: int, status: str | None = None, limit: int = 100) -> list[Campaign]:
    query = select(Campaign).where(Campaign.workspace_id == workspace_id)
    if status:
        query = query.where(Campaign.status == status)
    return list(db.scalars(query.order_by(Campaign.id.desc()).limit(limit)))


def update_draft(db: Session, *, workspace_id: int, campaign_id: int, data: dict, actor: Actor) -> Campaign:
    campaign = get(db, workspace_id=workspace_id, campaign_id=campaign_id, lock=True)
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only a draft can be changed")
    _apply(db, campaign, data)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.update", target_kind="campaign",
                 target_id=campaign.id, detail={"changed": sorted(data)})
    return campaign


def delete(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> None:
    campaign = get(db, workspace_id=workspace_id, campaign_id=campaign_id, lock=True)
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only a draft can be deleted (cancel it instead)")
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.delete", target_kind="campaign",
                 target_id=campaign.id, detail={"name": campaign.name})
    db.execute(sql_delete(Variant).where(Variant.campaign_id == campaign.id))
    db.delete(campaign)
    db.flush()


# --- sending ----------------------------------------------------------------------------------------


def resolve_channels(db: Session, campaign: Campaign) -> dict[str, int]:
    """The provider account per channel kind of the order: the chosen one, else the workspace's default."""
    from tutti.channels.service import default_channel

    out = {}
    for kind in campaign.channels:
        if kind in (campaign.channel_ids or {}):
            out[kind] = campaign.channel_ids[kind]
            continue
        channel = default_channel(db, workspace_id=campaign.workspace_id, kind=kind)
        if channel is None:
            raise InvalidInput(f"no {kind} channel is connected; connect one in Settings → Channels or remove {kind} "
                               "from the channels", field="channels")
        out[kind] = channel.id
    return out


def check_ready(db: Session, campaign: Campaign) -> None:
    """Everything sending needs, named when missing: an audience, channels and a message per variant × channel."""
    from tutti.reach.campaigns import content

    aud = campaign.audience or {}
    if not aud.get("segment_ids") and not aud.get("contact_ids"):
        raise InvalidInput("choose at least one segment for the audience", field="audience.segment_ids")
    resolve_channels(db, campaign)
    for variant in _variants_of(db, campaign.id):
        for kind in campaign.channels:
            content.content_for(db, campaign=campaign, variant=variant, kind=kind)


def _enqueue(db: Session, campaign_id: int) -> None:
    def go(_session) -> None:
        from tutti.reach.campaigns.jobs import send_campaign

        send_campaign(campaign_id)

    event.listen(db, "after_commit", go, once=True)


def _transition(db: Session, *, workspace_id: int, campaign_id: int, allowed: tuple[str, ...], verb: str) -> Campaign:
    campaign = get(db, workspace_id=workspace_id, campaign_id=campaign_id, lock=True)
    if campaign.status not in allowed:
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; it cannot {verb}", field="status")
    return campaign


def send_now(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("draft", "scheduled"), verb="be sent")
    check_ready(db, campaign)
    campaign.status, campaign.started_at, campaign.heartbeat_at = "sending", utcnow(), utcnow()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.send", target_kind="campaign", target_id=campaign.id)
    _enqueue(db, campaign.id)
    return campaign


def schedule(db: Session, *, workspace_id: int, campaign_id: int, scheduled_at=None, actor: Actor) -> Campaign:
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("draft", "scheduled"), verb="be scheduled")
    when = _scheduled_at(scheduled_at) if scheduled_at is not None else campaign.scheduled_at
    if when is None:
        raise InvalidInput("scheduled_at is required to schedule a campaign", field="scheduled_at")
    if when < utcnow() - timedelta(minutes=1):
        raise InvalidInput("scheduled_at is in the past; send it now instead", field="scheduled_at")
    check_ready(db, campaign)
    campaign.scheduled_at, campaign.status = when, "scheduled"
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.schedule", target_kind="campaign",
                 target_id=campaign.id, detail={"scheduled_at": when.isoformat()})
    return campaign


def unschedule(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("scheduled",), verb="go back to draft")
    campaign.status = "draft"
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.unschedule", target_kind="campaign", target_id=campaign.id)
    return campaign


def pause(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("sending",), verb="be paused")
    campaign.status = "paused"
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.pause", target_kind="campaign", target_id=campaign.id)
    return campaign


def resume(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("paused",), verb="be resumed")
    campaign.status, campaign.heartbeat_at = "sending", utcnow()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.resume", target_kind="campaign", target_id=campaign.id)
    _enqueue(db, campaign.id)
    return campaign


def cancel(db: Session, *, workspace_id: int, campaign_id: int, actor: Actor) -> Campaign:
    """Stop for good: queued deliveries become cancelled; those already with the provider (members of a request
    the sender wrote, see engine) finish. The campaign row's lock, taken first, waits for a claim writing
    requests."""
    campaign = _transition(db, workspace_id=workspace_id, campaign_id=campaign_id, allowed=("scheduled", "sending", "paused"),
                           verb="be cancelled")
    in_flight = [i for members in db.scalars(select(DeliveryBatch.delivery_ids).where(DeliveryBatch.campaign_id == campaign.id))
                 for i in members]
    which = [Delivery.campaign_id == campaign.id, Delivery.status == "queued"]
    if in_flight:
        which.append(not_in_ids(Delivery.id, in_flight, db.get_bind().dialect.name))
    cancelled = db.execute(update(Delivery).where(*which).values(status="cancelled", not_before=None)
                           .execution_options(synchronize_session=False)).rowcount
    campaign.status = "cancelled"
    campaign.cancelled_count = (campaign.cancelled_count or 0) + cancelled
    if not in_flight:
        campaign.finished_at = utcnow()
    else:
        _enqueue(db, campaign.id)  # the sender finishes what is with the provider, then marks it finished
    audit.record(db, workspace_id=workspace_id, actor=actor, action="campaign.cancel", target_kind="campaign",
                 target_id=campaign.id, detail={"cancelled_deliveries": cancelled})
    return campaign


def take_audience(db: Session, *, campaign: Campaign) -> dict:
    """The audience snapshot, in the caller's transaction (the job's first step)."""
    aud = campaign.audience or {}
    segment_ids = list(dict.fromkeys((aud.get("segment_ids") or []) + (aud.get("exclude_segment_ids") or [])))
    if segment_ids:
        from tutti.reach.segments import service as segments

        for segment_id in segment_ids:
            segments.refresh(db, workspace_id=campaign.workspace_id, segment_id=segment_id)
    try:
        channel_ids = resolve_channels(db, campaign)
    except InvalidInput as error:
        campaign.status, campaign.message, campaign.finished_at = "cancelled", error.message, utcnow()
        return {}
    taken = audience.take(db, campaign=campaign, channel_ids=channel_ids)
    campaign.recipients_count = taken["recipients"]
    campaign.holdout_count = taken["holdout"]
    campaign.deliveries_count = taken["deliveries"]
    campaign.skipped = taken["skipped"]
    campaign.snapshot_at = utcnow()
    audit.record(db, workspace_id=campaign.workspace_id, actor=Actor.system("campaigns"), action="campaign.audience",
                 target_kind="campaign", target_id=campaign.id, detail=taken)
    return taken


def due_campaigns(db: Session, *, now: datetime | None = None, stale_after: timedelta = timedelta(seconds=60)) -> list[int]:
    """Campaigns the tick should (re)start: scheduled ones whose time has come, and unfinished ones whose sender
    has not been heard of for a while (it died, waits for quiet hours or a back-off, or its message was lost)."""
    now = now or utcnow()
    starting = list(db.scalars(select(Campaign.id).where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)))
    stale = list(db.scalars(select(Campaign.id).where(
        Campaign.status.in_(("sending", "cancelled", "paused")), Campaign.finished_at.is_(None),
        (Campaign.heartbeat_at.is_(None)) | (Campaign.heartbeat_at < now - stale_after))))
    return starting + stale


def start_scheduled(db: Session, *, campaign_id: int) -> bool:
    campaign = db.scalar(select(Campaign).where(Campaign.id == campaign_id).with_for_update())
    if campaign is None or campaign.status != "scheduled" or campaign.scheduled_at > utcnow():
        return False
    campaign.status, campaign.started_at, campaign.heartbeat_at = "sending", utcnow(), utcnow()
    audit.record(db, workspace_id=campaign.workspace_id, actor=Actor.system("scheduler"), action="campaign.send",
                 target_kind="campaign", target_id=campaign.id, detail={"scheduled_at": campaign.scheduled_at.isoformat()})
    return True


# --- reading ----------------------------------------------------------------------------------------


def progress(campaign: Campaign) -> dict:
    total = campaign.deliveries_count or 0
    done = (campaign.sent_count or 0) + (campaign.failed_count or 0) + (campaign.cancelled_count or 0)
    return {
        "status": campaign.status, "waiting": campaign.waiting, "audience_taken": campaign.snapshot_at is not None,
        "recipients": campaign.recipients_count, "holdout": campaign.holdout_count, "deliveries": total,
        "sent": campaign.sent_count, "failed": campaign.failed_count, "cancelled": campaign.cancelled_count,
        "queued": max(0, total - done), "done": campaign.status in ("sent", "cancelled") and campaign.finished_at is not None,
        "percent": round(100 * done / total, 1) if total else (100.0 if campaign.finished_at else 0.0),
        "skipped": campaign.skipped or {}, "message": campaign.message,
        "started_at": campaign.started_at, "finished_at": campaign.finished_at,
    }


def variant_dict(variant: Variant) -> dict:
    return {"id": variant.id, "name": variant.name, "split_percent": variant.split_percent,
            "template_ids": variant.template_ids or {}, "content": variant.content or {}}


def as_dict(db: Session, campaign: Campaign) -> dict:
    return {
        "id": campaign.id, "name": campaign.name, "kind": campaign.kind, "status": campaign.status,
        "audience": campaign.audience or {}, "channels": campaign.channels or [], "channel_ids": campaign.channel_ids or {},
        "holdout_percent": campaign.holdout_percent, "scheduled_at": campaign.scheduled_at, "quiet_hours": campaign.quiet_hours,
        "frequency_cap": campaign.frequency_cap, "attribution_days": campaign.attribution_days, "costs": campaign.costs or {},
        "variants": [variant_dict(v) for v in _variants_of(db, campaign.id)], "progress": progress(campaign),
        "created_at": campaign.created_at, "updated_at": campaign.updated_at,
    }


def deliveries(db: Session, *, workspace_id: int, campaign_id: int, status: str | None = None, after_id: int | None = None,
               limit: int = 100) -> list[Delivery]:
    get(db, workspace_id=workspace_id, campaign_id=campaign_id)
    query = select(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.workspace_id == workspace_id)
    if status:
        query = query.where(Delivery.status == status)
    if after_id:
        query = query.where(Delivery.id > after_id)
    return list(db.scalars(query.order_by(Delivery.id).limit(limit)))


def delivery_dict(delivery: Delivery) -> dict:
    return {"id": delivery.id, "contact_id": delivery.contact_id, "variant_id": delivery.variant_id, "channel": delivery.channel,
            "channel_id": delivery.channel_id, "address": delivery.address, "key": delivery.key, "status": delivery.status,
            "attempts": delivery.attempts, "error_code": delivery.error_code, "error_reason": delivery.error_reason,
            "provider_id": delivery.provider_id, "created_at": delivery.created_at, "sent_at": delivery.sent_at}


def after_commit(db: Session, action: Callable[[], None]) -> None:
    event.listen(db, "after_commit", lambda _session: action(), once=True)
