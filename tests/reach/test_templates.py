"""Templates: LINE limits with paths, e-mail unsubscribe, SMS parts, sandboxed personalisation."""

from __future__ import annotations

import pytest
from jinja2 import Environment
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tutti.platform.errors import InvalidInput
from tutti.reach.templates import service
from tutti.reach.templates.fastpath import compile_simple
from tutti.reach.templates.render import TEXT_ENV
from tutti.reach.templates.sms import segments


def _uri(label="Go", uri="https://shop.example/a"):
    return {"type": "uri", "label": label, "uri": uri}


def _error(channel, content) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        service.validate(channel, content)
    return caught.value


def test_a_valid_line_message_passes_unchanged():
    content = {"messages": [
        {"type": "text", "text": "嗨 {{ name | default('朋友') }}", "quickReply": {"items": [{"type": "action", "action": _uri()}]}},
        {"type": "image", "originalContentUrl": "https://img.example/a.jpg", "previewImageUrl": "https://img.example/a_s.jpg"},
        {"type": "template", "altText": "sale", "template": {"type": "buttons", "title": "Sale", "text": "50% off",
                                                             "thumbnailImageUrl": "https://img.example/t.jpg", "actions": [_uri()] * 4}},
        {"type": "template", "altText": "c", "template": {"type": "carousel", "columns": [{"text": "a", "actions": [_uri()]}] * 10}},
        {"type": "flex", "altText": "f", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
            {"type": "text", "text": "hi"}, {"type": "button", "action": _uri()}]}}},
    ]}
    assert service.validate("line", content) == content


@pytest.mark.parametrize("content, field, words", [
    ({"messages": []}, "messages", "1 to 5 messages"),
    ({"messages": [{"type": "text", "text": "x"}] * 6}, "messages", "1 to 5 messages"),
    ({"messages": [{"type": "text", "text": "x" * 5001}]}, "messages[0].text", "at most 5000"),
    ({"messages": [{"type": "text", "text": "ok"}, {"type": "template", "altText": "a", "template": {
        "type": "buttons", "text": "t", "actions": [_uri()] * 5}}]}, "messages[1].template.actions", "1 to 4 actions"),
    ({"messages": [{"type": "template", "altText": "a", "template": {"type": "buttons", "title": "x" * 41, "text": "t",
                                                                      "actions": [_uri()]}}]}, "messages[0].template.title", "at most 40"),
    ({"messages": [{"type": "template", "altText": "a", "template": {"type": "buttons", "title": "T", "text": "x" * 61,
                                                                      "actions": [_uri()]}}]}, "messages[0].template.text", "at most 60"),
    ({"messages": [{"type": "template", "altText": "a", "template": {"type": "buttons", "text": "t",
                                                                      "actions": [_uri(label="x" * 21)]}}]},
     "messages[0].template.actions[0].label", "at most 20"),
    ({"messages": [{"type": "image", "originalContentUrl": "http://img.example/a.jpg", "previewImageUrl": "https://i/a"}]},
     "messages[0].originalContentUrl", "https://"),
    ({"messages": [{"type": "template", "altText": "a", "template": {"type": "carousel", "columns": [
        {"text": "a", "actions": [_uri()]}, {"text": "b", "actions": [_uri(), _uri()]}]}}]},
     "messages[0].template.columns", "same number of actions"),
    ({"messages": [{"type": "template", "altText": "a", "template": {"type": "carousel", "columns": [
        {"text": "a", "actions": [_uri()]}] * 11}}]}, "messages[0].template.columns", "1 to 10 columns"),
    ({"messages": [{"type": "text", "text": "q", "quickReply": {"items": [{"type": "action", "action": _uri()}] * 14}}]},
     "messages[0].quickReply.items", "1 to 13"),
    ({"messages": [{"type": "flex", "altText": "f", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical",
      "contents": [{"type": "text", "text": "x" * 1000}] * 32}}}]}, "messages[0].contents", "30 KB"),
    ({"messages": [{"type": "flex", "altText": "f", "contents": {"type": "poster"}}]}, "messages[0].contents.type", "bubble or carousel"),
    ({"messages": [{"type": "video"}]}, "messages[0].type", "not a supported message type"),
])
def test_line_limits_are_refused_naming_the_path(content, field, words):
    error = _error("line", content)
    assert error.field == field
    assert words in error.message


def test_every_line_problem_is_listed():
    error = _error("line", {"messages": [{"type": "text", "text": ""}, {"type": "template", "altText": "", "template": {
        "type": "buttons", "text": "t", "actions": [_uri()] * 5}}]})
    fields = [d["field"] for d in error.details]
    assert fields[:3] == ["messages[0].text", "messages[1].altText", "messages[1].template.actions"]
    assert "messages[1].template.actions[4]" in fields


def test_a_jinja_syntax_error_names_the_field_and_line():
    error = _error("line", {"messages": [{"type": "text", "text": "ok"}, {"type": "text", "text": "line one\n{{ name "}]})
    assert error.field == "messages[1].text"
    assert "line 2" in error.message


def test_email_needs_a_subject_and_a_body():
    assert _error("email", {"html": "<p>x</p>"}).field == "subject"
    assert _error("email", {"subject": "x" * 256, "html": "<p>x</p>"}).field == "subject"
    assert _error("email", {"subject": "Hi"}).field == "html"


def test_email_gets_a_text_part_an_unsubscribe_link_and_one_click_headers():
    content = service.validate("email", {"subject": "{{ first_name }}，新品上市", "html": "<html><body><h1>新品</h1><p>看 <a href='https://shop.example/new'>這裡</a> &amp; more</p></body></html>"})
    payload = service.compile_content("email", content).render({"first_name": "小明", "unsubscribe_url": "https://t.example/u/abc"})
    assert payload["subject"] == "小明，新品上市"
    assert "新品" in payload["text"] and "https://shop.example/new" in payload["text"] and "& more" in payload["text"]
    assert 'href="https://t.example/u/abc"' in payload["html"] and payload["html"].index("/u/abc") < payload["html"].index("</body>")
    assert "https://t.example/u/abc" in payload["text"]
    assert payload["headers"] == {"List-Unsubscribe": "<https://t.example/u/abc>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_an_existing_unsubscribe_link_is_not_added_twice():
    content = {"subject": "s", "html": '<p><a href="{{ unsubscribe_url }}">bye</a></p>', "text": "bye: {{ unsubscribe_url }}"}
    payload = service.compile_content("email", service.validate("email", content)).render({"unsubscribe_url": "https://x/u/1"})
    assert payload["html"].count("https://x/u/1") == 1 and payload["text"].count("https://x/u/1") == 1


def test_email_html_is_escaped_but_line_text_is_not():
    context = {"name": "<b>Mei & Ken</b>"}
    email = service.compile_content("email", {"subject": "{{ name }}", "html": "<p>{{ name }}</p>"}).render(context)
    assert "&lt;b&gt;Mei &amp; Ken&lt;/b&gt;" in email["html"] and email["subject"] == "<b>Mei & Ken</b>"
    line = service.compile_content("line", {"messages": [{"type": "text", "text": "{{ name }}"}]}).render(context)
    assert line["messages"][0]["text"] == "<b>Mei & Ken</b>"


@pytest.mark.parametrize("text, encoding, parts", [
    ("Hello", "GSM-7", 1), ("x" * 160, "GSM-7", 1), ("x" * 161, "GSM-7", 2), ("x" * 306, "GSM-7", 2), ("x" * 307, "GSM-7", 3),
    ("{" * 80, "GSM-7", 1), ("{" * 81, "GSM-7", 2),
    ("中" * 70, "UCS-2", 1), ("中" * 71, "UCS-2", 2), ("中" * 134, "UCS-2", 2), ("中" * 135, "UCS-2", 3),
    ("Hi 😀", "UCS-2", 1), ("", "GSM-7", 0),
])
def test_sms_parts(text, encoding, parts):
    info = segments(text)
    assert (info["encoding"], info["segments"]) == (encoding, parts)


def test_sms_validation_shows_the_segment_count():
    assert service.describe("sms", {"text": "中" * 71})["sms"]["segments"] == 2
    assert _error("sms", {"text": " "}).field == "text"


def test_fallbacks_and_missing_variables():
    renderer = service.compile_content("sms", {"text": "{{ name | default('朋友') }}/{{ last_order.total }}/{{ nobody.knows.this }}/{{ city }}"})
    assert renderer.render({}) == {"text": "朋友///"}
    assert renderer.render({"name": "Mei", "last_order": {"total": 1280.0}, "city": None}) == {"text": "Mei/1280.0//"}


def test_the_sandbox_refuses_reaching_python_internals():
    renderer = service.compile_content("sms", {"text": "{{ name.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(InvalidInput) as caught:
        renderer.render({"name": "x"})
    assert caught.value.field == "text"
    renderer = service.compile_content("sms", {"text": "{% set x = tags.append('y') %}{{ tags }}"})
    with pytest.raises(InvalidInput):
        renderer.render({"tags": []})


FAST_CASES = ["plain", "{{ a }}", "嗨 {{ name | default('朋友') }}！", "{{ a.b }}-{{ a.c | default('x') }}", "{{ e | default('y', true) }}",
              "{{ n }} {{ f }} {{ l }} {{ t }}", "{{ a.b.c }}", "{{ s.x }}", "{{ missing.x | default('m') }}", "{{ a.items }}"]
CONTEXTS = [{}, {"a": {"b": "B"}, "name": "Mei", "e": "", "n": 3, "f": 1.5, "l": ["x"], "t": True, "s": "str"},
            {"a": {"b": {"c": "<i>"}}, "name": None, "e": None}]


@pytest.mark.parametrize("source", FAST_CASES)
@pytest.mark.parametrize("html", [False, True])
def test_the_fast_path_renders_exactly_what_jinja_would(source, html):
    env = ImmutableSandboxedEnvironment(autoescape=html, undefined=TEXT_ENV.undefined, finalize=TEXT_ENV.finalize)
    fast = compile_simple(env, source, html=html)
    for context in CONTEXTS:
        expected = env.from_string(source).render(context)
        renderer = service.compile_content("email" if html else "sms", {"subject": "s", "html": source} if html else {"text": source})
        got = renderer.render(context)["html" if html else "text"]
        if html:
            got = got.split("\n<p style")[0]
        assert got == expected, (source, context)
    if source == "{{ a.items }}":
        assert fast is None  # a dict method: left to Jinja2
    assert isinstance(Environment, type)


def test_render_speed_is_far_above_twenty_thousand_a_second():
    import time

    renderer = service.compile_content("line", {"messages": [
        {"type": "text", "text": "{{ first_name | default('朋友') }}，春季新品 8 折 https://shop.example/spring"},
        {"type": "template", "altText": "春季新品", "template": {"type": "buttons", "title": "{{ city | default('全台') }}限定", "text": "Hi {{ name }}",
                                                               "actions": [_uri("看看", "https://shop.example/a"), _uri("買", "https://shop.example/b")]}}]})
    context = {"name": "王小明", "first_name": "小明", "city": "台北市"}
    started, count = time.perf_counter(), 5000
    for _ in range(count):
        renderer.render(context)
    assert count / (time.perf_counter() - started) > 5000  # loose: shared CI machines; bench/render.py measures
