"""Routes of the Segment-compatible tracking API: POST /v1/identify|track|page|screen|group|alias|batch|import.

Thin: reads the body (refusing it once it passes Segment's size limit, before reading the rest) and
hands it to `tracking.ingest`, which validates it fully, stores it durably in the inbox (one row,
committed) and wakes the worker: a 200 means durably stored, not yet in the event table.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tutti.audience import tracking

router = APIRouter(tags=["tracking"])
_OK = b'{"success":true}'


async def _read(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise tracking.TrackingTooLarge(f"the request is larger than {limit // 1024} KB, Segment's limit for this call",
                                            field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(endpoint: str):
    single = endpoint in tracking.TYPES
    limit = tracking.MAX_EVENT_BYTES if single else tracking.MAX_BATCH_BYTES

    async def receive(request: Request) -> Response:
        encoding = request.headers.get("content-encoding")
        # a gzip body is checked again once unpacked (tracking.unpack_body); the slack covers gzip's header
        body = await _read(request, limit + 1024 if (encoding or "").lower() == "gzip" else limit)
        await run_in_threadpool(tracking.ingest, endpoint=endpoint, body=body,
                                authorization=request.headers.get("authorization"), content_encoding=encoding)
        return Response(_OK, media_type="application/json")

    receive.__name__ = f"tracking_{endpoint}"
    receive.__doc__ = (f"Segment-compatible `{endpoint}` call. Write key as the HTTP Basic user name (or `writeKey` "
                       f"in the body). Limits: 32 KB per message, 500 KB per batch request.")
    return receive


for _name in (*tracking.TYPES, "batch", "import"):
    router.add_api_route(f"/v1/{_name}", _endpoint(_name), methods=["POST"], name=f"tracking_{_name}",
                         responses={200: {"content": {"application/json": {"example": {"success": True}}}},
                                    400: {"description": "invalid or too large; names the field and message index"},
                                    401: {"description": "missing or invalid write key"}})
