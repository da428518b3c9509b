"""SMS over a generic HTTP provider and signed outbound webhooks, against a real local HTTP server."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import serving
from tutti.channels import sms, webhook
from tutti.channels.base import Outgoing

TOKEN = "Bearer sk_test_123"


@pytest.fixture
def provider():
    """A stand-in SMS provider and webhook receiver on a real uvicorn server; keeps what it received."""
    seen: list[dict] = []
    app = FastAPI()

    @app.post("/sms")
    async def send_sms(request: Request):
        body = await request.json()
        seen.append({"headers": dict(request.headers), "body": body})
        if request.headers.get("authorization") != TOKEN:
            return JSONResponse({"message": "bad credentials"}, 401)
        number = body["recipient"]["phone"]
        if number.endswith("429"):
            return JSONResponse({"message": "slow down"}, 429, headers={"Retry-After": "3"})
        if number.endswith("500"):
            return JSONResponse({"error": "upstream carrier down"}, 503)
        if number.endswith("400"):
            return JSONResponse({"error": {"message": "invalid phone number"}}, 400)
        return {"data": {"id": f"sms_{len(seen)}"}}

    @app.get("/sms")
    async def whoami(request: Request):
        return JSONResponse({}, 200 if request.headers.get("authorization") == TOKEN else 401)

    @app.post("/hook/{kind}")
    async def hook(kind: str, request: Request):
        raw = await request.body()
        seen.append({"headers": dict(request.headers), "raw": raw, "kind": kind,
                     "valid": webhook.verify("whsec_test", raw, request.headers.get("x-tutti-signature"))})
        return JSONResponse({}, {"ok": 200, "gone": 410, "flaky": 500}[kind], headers={"x-request-id": "req-1"})

    with serving(app) as url:
        yield url, seen


def _sms_adapter(url, **config):
    config = {"url": f"{url}/sms", "body_template": {"recipient": {"phone": "{to}"}, "message": "{text}", "from": "{sender}",
                                                     "dedupe": "{key}"}, "id_field": "data.id", "sender": "TUTTI", **config}
    return sms.from_channel(channel_id=1, config=config, secrets={"auth_value": TOKEN})


def test_sms_outcomes(provider):
    url, seen = provider
    adapter = _sms_adapter(url)
    key = str(uuid.uuid4())
    messages = [Outgoing(key=key, to="+886912345678", payload={"text": "您的訂單已出貨"}),
                Outgoing(key="k429", to="+886900000429", payload={"text": "x"}),
                Outgoing(key="k500", to="+886900000500", payload={"text": "x"}),
                Outgoing(key="k400", to="+886900000400", payload={"text": "x"}),
                Outgoing(key="empty", to="+886912345678", payload={"text": ""})]
    ok, limited, down, bad, empty = adapter.send(messages)
    adapter.close()
    assert ok.status == "sent" and ok.provider_id == "sms_1"
    assert seen[0]["body"] == {"recipient": {"phone": "+886912345678"}, "message": "您的訂單已出貨", "from": "TUTTI", "dedupe": key}
    assert seen[0]["headers"]["idempotency-key"] == key and seen[0]["headers"]["authorization"] == TOKEN
    assert limited.status == "retry" and limited.retry_after == 3.0 and limited.code == "429"
    assert down.status == "retry" and down.reason == "503 upstream carrier down"
    assert bad.status == "failed" and bad.reason == "400 invalid phone number"
    assert empty.status == "failed" and len(seen) == 4  # nothing was sent for the empty text


def test_sms_test_connection_and_unreachable(provider):
    url, _ = provider
    assert "answered 200" in _sms_adapter(url).test_connection()["message"]
    wrong = sms.from_channel(channel_id=1, config={"url": f"{url}/sms"}, secrets={"auth_value": "Bearer nope"})
    with pytest.raises(Exception, match="refused the credentials"):
        wrong.test_connection()
    gone = sms.from_channel(channel_id=1, config={"url": "http://127.0.0.1:9/sms"}, secrets={})
    [outcome] = gone.send([Outgoing(key="k", to="+886912345678", payload={"text": "x"})])
    assert outcome.status == "retry" and outcome.code == "network"


def test_sms_segments():
    assert sms.segments("a" * 160) == 1 and sms.segments("a" * 161) == 2
    assert sms.segments("中" * 70) == 1 and sms.segments("中" * 71) == 2 and sms.segments("中" * 135) == 3


def test_webhook_is_signed_and_outcomes(provider):
    url, seen = provider
    adapter = webhook.from_channel(channel_id=1, config={"url": f"{url}/hook/ok"}, secrets={"signing_secret": "whsec_test"})
    body = {"event": "campaign.message", "contact": {"id": 7, "name": "林美玲"}}
    ok, gone, flaky = adapter.send([Outgoing(key="d-1", to="contact-7", payload={"body": body}),
                                    Outgoing(key="d-2", to=f"{url}/hook/gone", payload={"body": body}),
                                    Outgoing(key="d-3", to=f"{url}/hook/flaky", payload={"body": body})])
    assert (ok.status, ok.provider_id) == ("sent", "req-1")
    assert gone.status == "failed" and gone.code == "410"
    assert flaky.status == "retry" and flaky.code == "500"
    first = seen[0]
    assert first["valid"] and orjson.loads(first["raw"]) == body and first["headers"]["x-tutti-delivery"] == "d-1"
    assert "contact-7" not in first["kind"]
    assert adapter.test_connection()["message"].endswith("200")
    adapter.close()


def test_webhook_verify_rejects_tampering_other_secrets_and_old_signatures():
    raw = b'{"a":1}'
    header = webhook.signature("whsec_x", raw)
    assert webhook.verify("whsec_x", raw, header)
    assert not webhook.verify("whsec_x", b'{"a":2}', header)
    assert not webhook.verify("whsec_y", raw, header)
    assert not webhook.verify("whsec_x", raw, None) and not webhook.verify("whsec_x", raw, "v1=abc")
    old = webhook.signature("whsec_x", raw, timestamp=int(time.time()) - 3600)
    assert not webhook.verify("whsec_x", raw, old)
    assert webhook.verify("whsec_x", raw, old, tolerance=7200)
