"""Tracked links: codes are signed, URLs are found where people click them, rewriting needs no database."""

from __future__ import annotations

import re

import pytest

from tutti.reach.templates import service as templates
from tutti.reach.tracking import codes, links
from tutti.reach.tracking.links import LinkRewriter, find_urls


def test_link_codes_round_trip_and_refuse_any_change():
    code = codes.link_code(123456789, 7)
    assert codes.read_link_code(code) == (123456789, 7)
    assert len(code) <= 16
    for index in range(len(code)):
        for replacement in "0aZ":
            altered = code[:index] + replacement + code[index + 1:]
            if altered != code:
                assert codes.read_link_code(altered) is None
    assert codes.read_link_code("") is None and codes.read_link_code("!!!!!!!!!!") is None
    assert codes.read_link_code("x" * 500) is None
    assert codes.read_open_code(code) is None  # a link code is not an open code
    assert codes.read_open_code(codes.open_code(42)) == 42


def test_unsubscribe_tokens_name_workspace_and_contact():
    token = codes.unsubscribe_token(3, 99)
    assert codes.read_unsubscribe_token(token) == (3, 99)
    assert codes.read_unsubscribe_token(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert codes.read_unsubscribe_token("1-2-abcdef") is None


LINE = {"messages": [
    {"type": "text", "text": "新品 https://shop.example/new?x=1。也看看 https://shop.example/b, 或 https://shop.example/p?id={{ id }}"},
    {"type": "image", "originalContentUrl": "https://img.example/a.jpg", "previewImageUrl": "https://img.example/a.jpg"},
    {"type": "template", "altText": "https://not.a.link/alt", "template": {"type": "buttons", "text": "t", "actions": [
        {"type": "uri", "label": "a", "uri": "https://shop.example/new?x=1"}, {"type": "uri", "label": "c", "uri": "https://shop.example/c"},
        {"type": "message", "label": "m", "text": "https://shop.example/said"}]}},
]}


def test_urls_are_found_where_people_click_them_and_never_in_images():
    assert find_urls("line", LINE) == ["https://shop.example/new?x=1", "https://shop.example/b", "https://shop.example/c"]
    email = {"subject": "s", "html": '<a href="https://shop.example/a?b=1&amp;c=2">x</a><img src="https://img.example/i.png">',
             "text": "go https://shop.example/t."}
    assert find_urls("email", email) == ["https://shop.example/a?b=1&c=2", "https://shop.example/t"]


def _rewriter(channel, payload):
    urls = find_urls(channel, payload)
    return LinkRewriter(channel=channel, positions={u: i for i, u in enumerate(urls)}, link_ids={}, public_url="https://t.example")


def test_rewrite_swaps_each_tracked_url_for_a_signed_short_link():
    rendered = templates.compile_content("line", LINE).render({"id": 5})
    payload = _rewriter("line", LINE).rewrite(rendered, delivery_id=77)
    text = payload["messages"][0]["text"]
    shorts = re.findall(r"https://t\.example/l/(\w+)", text)
    assert [codes.read_link_code(c) for c in shorts] == [(77, 0), (77, 1)]
    assert "。也看看" in text and "https://shop.example/p?id=5" in text  # punctuation kept; personalised URL left alone
    actions = payload["messages"][2]["template"]["actions"]
    assert codes.read_link_code(actions[0]["uri"].rsplit("/", 1)[1]) == (77, 0)
    assert codes.read_link_code(actions[1]["uri"].rsplit("/", 1)[1]) == (77, 2)
    assert actions[2]["text"] == "https://shop.example/said"
    assert payload["messages"][1]["originalContentUrl"] == "https://img.example/a.jpg"


def test_email_rewrite_keeps_unsubscribe_and_adds_the_open_pixel():
    content = {"subject": "s", "html": "<html><body><a href='https://shop.example/a'>a</a></body></html>"}
    payload = templates.compile_content("email", content).render({"unsubscribe_url": "http://127.0.0.1:8000/u/tok"})
    rewriter = _rewriter("email", payload)
    assert set(rewriter.positions) == {"https://shop.example/a"}
    out = rewriter.rewrite(payload, delivery_id=5)
    assert "href='https://t.example/l/" in out["html"] and "/u/tok" in out["html"]
    pixel = re.search(r'src="https://t\.example/o/(\w+)\.gif"', out["html"])
    assert pixel and codes.read_open_code(pixel.group(1)) == 5
    assert out["html"].index(pixel.group(0)) < out["html"].index("</body>")
    assert "https://t.example/l/" in out["text"]


@pytest.mark.parametrize("channel, payload", [("sms", {"text": "Sale https://shop.example/s"})])
def test_sms_links_are_rewritten(channel, payload):
    out = _rewriter(channel, payload).rewrite(dict(payload), delivery_id=9)
    assert out["text"].startswith("Sale https://t.example/l/")
    assert links._channel_of(payload) == "sms"
