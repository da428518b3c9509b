"""The OpenAI-compatible chat client against the local fake server (a real HTTP server)."""

from __future__ import annotations

import time

import pytest

from tutti.ai.llm import LLM, LLMError, client_for, validate
from tutti.platform.config import Settings

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}


def _llm(fake, timeout=5.0):
    return LLM(base_url=fake.url, model="fake-model", api_key="sk-test", timeout=timeout)


def test_plain_answer_and_request_shape(fake_openai):
    fake_openai.reply("您好")
    result = _llm(fake_openai).chat([{"role": "user", "content": "hi"}])
    assert result.content == "您好" and result.tool_calls == [] and result.finish_reason == "stop"
    request = fake_openai.requests[-1]
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "fake-model"
    assert request["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_tool_calls_are_parsed(fake_openai):
    fake_openai.reply_tool_call("order_status", {"order_number": "A-1001"})
    tools = [{"type": "function", "function": {"name": "order_status", "parameters": {"type": "object"}}}]
    result = _llm(fake_openai).chat([{"role": "user", "content": "where is my order"}], tools=tools)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("order_status", {"order_number": "A-1001"})
    ]
    assert fake_openai.last_chat()["tools"] == tools


def test_structured_output_parsed_and_checked(fake_openai):
    fake_openai.reply_json({"answer": "七天內可退貨", "confidence": 0.9})
    result = _llm(fake_openai).chat([{"role": "user", "content": "q"}], json_schema=SCHEMA)
    assert result.parsed == {"answer": "七天內可退貨", "confidence": 0.9}
    sent = fake_openai.last_chat()["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == SCHEMA


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (lambda f: f.reply_raw('{"answer": "x", '), "malformed"),
        (lambda f: f.reply_json({"answer": "x"}), "schema"),
        (lambda f: f.reply_json({"answer": "x", "confidence": 3}), "schema"),
        (lambda f: f.reply_json({"answer": "x", "confidence": 0.5, "extra": 1}), "schema"),
        (lambda f: f.reply_tool_call("t", "{broken"), "malformed"),
        (lambda f: f.reply_body(b"<html>bad gateway</html>", content_type="text/html"), "protocol"),
        (lambda f: f.reply_body(b'{"choices": []}'), "protocol"),
        (lambda f: f.fail(500), "http"),
        (lambda f: f.fail(429, "rate limited"), "http"),
    ],
)
def test_every_failure_is_a_typed_error(fake_openai, script, kind):
    script(fake_openai)
    with pytest.raises(LLMError) as caught:
        _llm(fake_openai).chat([{"role": "user", "content": "q"}], json_schema=SCHEMA)
    assert caught.value.kind == kind


def test_timeout(fake_openai):
    fake_openai.hang(3)
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        _llm(fake_openai).chat([{"role": "user", "content": "q"}], timeout=0.5)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 2.5


def test_connection_refused():
    llm = LLM(base_url="http://127.0.0.1:9/v1", model="m", timeout=2)
    with pytest.raises(LLMError) as caught:
        llm.chat([{"role": "user", "content": "q"}])
    assert caught.value.kind in ("connection", "timeout")


def test_client_for_settings():
    assert client_for(Settings(llm_base_url=None)) is None
    llm = client_for(
        Settings(llm_base_url="http://x/v1/", llm_model="m1", llm_api_key="sk-secret", llm_timeout=3)
    )
    assert (llm.base_url, llm.model, llm.api_key, llm.timeout) == ("http://x/v1", "m1", "sk-secret", 3.0)
    assert "sk-secret" not in repr(llm)


def test_validate_subset():
    assert (
        validate(
            {"a": [1, 2]},
            {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}},
        )
        is None
    )
    assert "expected integer" in validate(
        {"a": [1, "x"]}, {"properties": {"a": {"items": {"type": "integer"}}}}
    )
    assert validate("b", {"enum": ["a"]}).startswith("$")
