"""Reading a tracking request as Segment's HTTP Tracking API sends it: the call types, the size limits,
the errors the API answers with, the JSON body (unpacked from gzip) and the write key."""

from __future__ import annotations

import base64
import zlib

import orjson

from tutti.platform.errors import TuttiError

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
TYPES = ("identify", "track", "page", "screen", "group", "alias")


class TrackingError(TuttiError):
    """A request the tracking API refuses: 400, naming the field (and the message's index in a batch).

    Segment's libraries read `code` and `message` at the top level of an error answer, so they are
    repeated there next to Tutti's usual `error` object."""

    status = 400
    code = "invalid"

    def as_dict(self) -> dict:
        body = super().as_dict()
        return {**body, "code": self.code, "message": self.message}


class TrackingTooLarge(TrackingError):
    code = "too_large"


class TrackingUnauthorized(TrackingError):
    status = 401
    code = "unauthorized"


def unpack_body(body: bytes, *, content_encoding: str | None, single: bool) -> tuple[bytes, dict]:
    """The JSON bytes of a request (unpacked from gzip) and the object they hold, within Segment's size limits."""
    limit = MAX_EVENT_BYTES if single else MAX_BATCH_BYTES
    what = "a single event (32 KB)" if single else "a batch request (500 KB)"
    if (content_encoding or "").strip().lower() == "gzip":
        try:
            unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = unpacker.decompress(body, limit + 1)
            if len(body) > limit:
                raise TrackingTooLarge(f"the request is larger than Segment's limit for {what}", field="body")
        except zlib.error:
            raise TrackingError("the body is not valid gzip (Content-Encoding: gzip was sent)", field="body") from None
    if len(body) > limit:
        raise TrackingTooLarge(f"the request is {len(body) // 1024} KB, larger than Segment's limit for {what}", field="body")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise TrackingError(f"the body is not valid JSON: {error}", field="body") from None
    if not isinstance(payload, dict):
        raise TrackingError("the body must be a JSON object", field="body")
    return body, payload


def write_key_of(authorization: str | None, payload: dict) -> str:
    """Segment's convention: the write key is the HTTP Basic user name; `writeKey` in the body also works."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            key = base64.b64decode(encoded.strip(), validate=True).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            raise TrackingUnauthorized("the Authorization header is not valid HTTP Basic", field="authorization") from None
        if key:
            return key
    key = payload.get("writeKey")
    if isinstance(key, str) and key:
        return key
    raise TrackingUnauthorized("send the workspace's write key as the HTTP Basic user name (or writeKey in the body)", field="authorization")
