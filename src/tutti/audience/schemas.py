"""Request and response shapes of the Audience REST API, with the examples shown at /docs."""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tutti.audience.attributes import PROFILE_FIELDS
from tutti.platform.schemas import Body, Id, JsonObject, Text, UtcDatetime

Channel = Literal["line", "email", "sms"]
IdentityKind = Literal["external_id", "line_uid", "email", "phone", "anonymous_id"]
AttributeType = Literal["string", "number", "boolean", "date", "list"]
TagName = Text(100, 1)
MAX_BULK = 10_000

LINE_UID_EXAMPLE = "U4af4980629a0d0b2f2e8e5b1c3d5e7f9"


# --- requests --------------------------------------------------------------------------------------


class Identities(Body):
    email: Text(320) | None = Field(default=None, examples=["mei.lin@example.com"])
    phone: Text(64) | None = Field(default=None, description="any common format; stored as E.164", examples=["0912-345-678"])
    line_uid: Text(64) | None = Field(default=None, examples=[LINE_UID_EXAMPLE])
    external_id: Text(200) | None = Field(default=None, description="the shop's own customer id", examples=["C00123"])
    anonymous_id: Text(200) | None = None


class ProfileFields(Body):
    name: Text(200) | None = Field(default=None, examples=["林美玲"])
    gender: Text(16) | None = Field(default=None, description="female, male or other (女/男 understood)", examples=["female"])
    birthday: date | None = Field(default=None, examples=["1990-05-17"])
    locale: Text(16) | None = Field(default=None, examples=["zh-TW"])
    timezone: Text(64) | None = Field(default=None, examples=["Asia/Taipei"])
    city: Text(100) | None = Field(default=None, examples=["台北市"])

    def profile(self) -> dict:
        """Only the fields the caller sent; an explicit null clears a field."""
        return {key: value for key, value in self.model_dump(exclude_unset=True).items() if key in PROFILE_FIELDS}


class ContactIn(ProfileFields):
    """Create the contact these identities belong to, or update it when one of them is known."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "identities": {"email": "mei.lin@example.com", "phone": "0912-345-678"},
            "name": "林美玲", "birthday": "1990-05-17", "city": "台北市",
            "attributes": {"member_level": "gold", "points": 1200},
            "tags": ["vip"], "consent": {"email": "subscribed"},
        }]},
    )

    identities: Identities
    attributes: JsonObject = Field(default_factory=dict, description="custom attributes; new keys are declared by their value's type")
    tags: list[TagName] = Field(default_factory=list, max_length=100)
    consent: dict[Channel, Text(32)] = Field(default_factory=dict, examples=[{"line": "subscribed", "email": "unsubscribed"}])


class ContactPatch(ProfileFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"city": "高雄市", "attributes": {"points": 1500, "old_key": None}}]})

    attributes: JsonObject = Field(default_factory=dict, description="null removes an attribute")


class IdentityIn(Body):
    kind: IdentityKind = Field(examples=["email"])
    value: Text(320, 1) = Field(examples=["mei.work@example.com"])


class MergeIn(Body):
    winner_id: Id = Field(description="the contact that stays")
    loser_id: Id = Field(description="the contact joined into the winner; its id keeps answering with the winner")


class EventIn(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Product Viewed", "occurred_at": "2025-03-01T10:15:00+08:00",
        "properties": {"sku": "TEA-001", "price": 450}, "message_id": "evt-7f3a",
    }]})

    name: Text(200, 1)
    occurred_at: UtcDatetime | None = Field(default=None, description="default: now")
    kind: Literal["track", "page", "screen", "identify", "group"] = "track"
    properties: JsonObject = Field(default_factory=dict)
    context: JsonObject | None = None
    message_id: Text(128, 1) | None = Field(default=None, description="an event seen before with this id is ignored")


class ConsentIn(Body):
    status: Text(32, 1) = Field(description="line: subscribed, blocked; email and sms: subscribed, unsubscribed, bounced",
                                examples=["unsubscribed"])
    source: Text(32, 1) = Field(default="api", examples=["preference_center"])
    at: UtcDatetime | None = Field(default=None, description="when the person made the choice; default: now")


class ContactTagsIn(Body):
    tags: list[TagName] = Field(min_length=1, max_length=100, examples=[["vip", "spring-sale"]])
    expires_at: UtcDatetime | None = Field(default=None, description="the tags drop off at this time")


class TagIn(Body):
    name: TagName = Field(examples=["vip"])
    description: Text(500) = Field(default="", examples=["Spent over NT$30,000 in a year"])


class BulkTagIn(Body):
    contact_ids: list[Id] = Field(min_length=1, max_length=MAX_BULK, examples=[[101, 102, 103]])
    expires_at: UtcDatetime | None = None


class AttributeIn(Body):
    key: Text(64, 1) = Field(examples=["member_level"])
    type: AttributeType = Field(examples=["string"])
    label: Text(200) = Field(default="", examples=["會員等級 Member level"])


# --- responses -------------------------------------------------------------------------------------


class IdentityOut(BaseModel):
    kind: str = Field(examples=["email"])
    value: str = Field(examples=["mei.lin@example.com"])
    source: str = Field(examples=["api"])
    created_at: datetime


class AttributeValue(BaseModel):
    key: str = Field(examples=["member_level"])
    type: str = Field(examples=["string"])
    value: Any = Field(examples=["gold"])


class ConsentState(BaseModel):
    status: str = Field(examples=["subscribed"])
    source: str
    updated_at: datetime


class ContactTagOut(BaseModel):
    name: str = Field(examples=["vip"])
    applied_at: datetime
    expires_at: datetime | None


class OrderSummary(BaseModel):
    count: int
    revenue: float = Field(description="total less refunds of counted orders", examples=[12800.0])
    last_at: datetime | None


class ContactOut(BaseModel):
    id: int
    requested_id: int | None = Field(default=None, description="set when the id asked for was merged into this contact")
    note: str | None = Field(default=None, examples=["contact 17 was merged into contact 12; this is contact 12"])
    name: str | None
    gender: str | None
    birthday: date | None
    locale: str | None
    timezone: str | None
    city: str | None
    identities: list[IdentityOut]
    attributes: list[AttributeValue]
    consent: dict[str, ConsentState]
    tags: list[ContactTagOut]
    orders: OrderSummary
    events: int = Field(description="how many events this contact has")
    merged_from: list[int] = Field(description="contacts merged into this one")
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None


class IdentityRef(BaseModel):
    kind: str
    value: str


class ContactUpserted(ContactOut):
    created: bool = Field(description="true when a new contact was created (status 201)")
    merged: list[int] = Field(description="contacts these identities proved to be the same person, now joined into this one")
    skipped_identities: list[IdentityRef] = Field(description="identities left with another person (a different customer id or LINE user)")


class ContactRow(BaseModel):
    id: int
    name: str | None
    city: str | None
    identities: dict[str, str] = Field(examples=[{"email": "mei.lin@example.com", "phone": "+886912345678"}])
    tags: list[str]
    created_at: datetime
    last_seen_at: datetime | None


class ContactPage(BaseModel):
    items: list[ContactRow]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class TimelineItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["event", "order", "consent", "tag"]
    at: datetime
    name: str


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    kind: str
    name: str
    occurred_at: datetime
    received_at: datetime
    properties: dict
    context: dict | None
    source: str
    message_id: str


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class EventRecorded(BaseModel):
    recorded: bool = Field(description="false when an event with this message_id was recorded before")
    message_id: str | None


class OrderLineOut(BaseModel):
    sku: str | None
    name: str | None
    category: str | None
    quantity: int
    unit_price: float
    status: str


class OrderOut(BaseModel):
    id: int
    external_id: str = Field(examples=["SO-2025-000123"])
    status: str
    currency: str
    subtotal: float | None
    discount: float
    shipping: float
    tax: float
    total: float
    refunded_total: float
    channel: str | None
    placed_at: datetime
    properties: dict
    lines: list[OrderLineOut]


class OrderList(BaseModel):
    items: list[OrderOut]


class ConsentOut(BaseModel):
    channel: str
    status: str
    source: str
    updated_at: datetime
    changed: bool = Field(description="false when the contact already had this status or newer news was held")


class ContactTagList(BaseModel):
    items: list[ContactTagOut]


class TagOut(BaseModel):
    id: int
    name: str
    description: str
    contacts: int = Field(description="contacts holding the tag now")


class TagList(BaseModel):
    items: list[TagOut]


class BulkTagOut(BaseModel):
    tag: str
    applied: int = Field(description="contacts given the tag")


class AttributeOut(BaseModel):
    key: str
    type: str
    label: str
    created_at: datetime


class AttributeList(BaseModel):
    items: list[AttributeOut]


class ExportOut(BaseModel):
    """Everything stored about one person (right of access)."""

    model_config = ConfigDict(extra="allow")

    contact_id: int
    exported_at: str
    profile: dict
    identities: list[dict]
    attributes: dict
    consent: dict
    consent_history: list[dict]
    tags: list[dict]
    tag_applications: list[dict]
    events: list[dict]
    orders: list[dict]
    merges: list[dict]


class EraseOut(BaseModel):
    contact_id: int
    erased_at: str
    removed: dict[str, int] = Field(examples=[{"identities": 2, "events_scrubbed": 14, "orders_scrubbed": 3, "tags": 1}])
