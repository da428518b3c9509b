"""Tracked links: each http(s) URL a message shows is swapped, per recipient, for `{public_url}/l/{code}`.

`prepare` finds the message's URLs once per (campaign, variant) and stores one `link` row per position;
`LinkRewriter.rewrite(payload, delivery_id)` then swaps them in each recipient's rendered payload with no
database work: the code carries the delivery id and the position, signed (see codes.py).

What is tracked: URLs in LINE text messages, every `uri` of an action (buttons, carousels, quick replies,
Flex), `href`s of the e-mail HTML, URLs in the e-mail text part and in SMS text. Images (LINE image URLs,
`<img src>`) are never rewritten. A URL that is personalised (contains Jinja2, like
`https://shop/cart?u={{ contact_id }}`) or that no prepared link matches is left as it is; so is the
recipient's own unsubscribe address. E-mails also get the open pixel `/o/{code}.gif`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.platform.config import get_settings
from tutti.platform.sql import insert_ignore
from tutti.reach.tracking import codes
from tutti.reach.tracking.models import Link

URL_RE = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")
HREF_RE = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
TRAILING = ".,;:!?)]"
MAX_URL = 2000


def _urls_in_text(text: str) -> list[str]:
    found = []
    for match in URL_RE.finditer(text):
        url = match.group(0).rstrip(TRAILING)
        end = match.start() + len(url)
        if text[end:end + 1] == "{" or text[end:end + 2] in ("{{", "{%"):
            continue  # personalised: the rest of the URL is a template
        found.append(url)
    return found


def _line_urls(value, found: list, *, in_text_message: bool = False) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "uri" and isinstance(child, str) and child.startswith(("http://", "https://")):
                if "{{" not in child and "{%" not in child:
                    found.append(child)
            elif key == "text" and in_text_message and isinstance(child, str):
                found.extend(_urls_in_text(child))
            elif key != "text":
                _line_urls(child, found)
    elif isinstance(value, list):
        for child in value:
            _line_urls(child, found)


def find_urls(channel: str, payload: dict) -> list[str]:
    """The trackable URLs of a (rendered or template) payload, in order of first appearance, once each."""
    found: list[str] = []
    if channel == "line":
        for message in payload.get("messages") or []:
            _line_urls(message, found, in_text_message=isinstance(message, dict) and message.get("type") == "text")
    elif channel == "email":
        for match in HREF_RE.finditer(payload.get("html") or ""):
            url = match.group(3)
            if "{{" not in url:
                found.append(html.unescape(url))
        found.extend(_urls_in_text(payload.get("text") or ""))
    elif channel == "sms":
        found.extend(_urls_in_text(payload.get("text") or ""))
    unsubscribe = f"{get_settings().public_url}/u/"
    urls = [url for url in dict.fromkeys(found) if len(url) <= MAX_URL and not url.startswith(unsubscribe)]
    return urls[: codes.MAX_POSITION + 1]


class LinkRewriter:
    """Swaps a message's prepared URLs for a recipient's short links. Cheap: no database work."""

    def __init__(self, *, channel: str, positions: dict[str, int], link_ids: dict[int, int], public_url: str,
                 open_pixel: bool = True):
        self.channel = channel
        self.positions = positions  # url -> position
        self.link_ids = link_ids  # position -> link row id
        self.public_url = public_url.rstrip("/")
        self.open_pixel = open_pixel and channel == "email"
        self._signer = codes.Signer()
        self._targets: list | None = None  # LINE: where the URLs are, found on the first payload

    def short_url(self, delivery_id: int, position: int) -> str:
        return f"{self.public_url}/l/{self._signer.link(delivery_id, position)}"

    def _swap(self, delivery_id: int) -> Callable[[str], str | None]:
        made: dict[str, str] = {}

        def swap(url: str) -> str | None:
            position = self.positions.get(url)
            if position is None:
                return None
            if url not in made:
                made[url] = self.short_url(delivery_id, position)
            return made[url]

        return swap

    def _text(self, text: str, swap) -> str:
        def replace(match: re.Match) -> str:
            whole = match.group(0)
            url = whole.rstrip(TRAILING)
            short = swap(url)
            return whole if short is None else short + whole[len(url):]

        return URL_RE.sub(replace, text)

    def _line_targets(self, value, path: tuple, found: list, *, in_text_message: bool = False) -> None:
        """Where a LINE payload can hold tracked URLs: (path to the holder, key, "uri" | "text")."""
        if isinstance(value, dict):
            for key, child in value.items():
                if key == "uri" and isinstance(child, str):
                    found.append((path, key, "uri"))
                elif key == "text" and in_text_message and isinstance(child, str):
                    found.append((path, key, "text"))
                elif key != "text" and isinstance(child, dict | list):
                    self._line_targets(child, path + (key,), found)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self._line_targets(child, path + (index,), found)

    def _line(self, payload: dict, swap) -> None:
        # Every recipient's payload of one message has the same shape (rendering only changes text), so
        # the places to look are found once, on the first payload.
        if self._targets is None:
            found: list = []
            for index, message in enumerate(payload.get("messages") or []):
                is_text = isinstance(message, dict) and message.get("type") == "text"
                self._line_targets(message, ("messages", index), found, in_text_message=is_text)
            self._targets = found
        for path, key, kind in self._targets:
            holder = payload
            for part in path:
                holder = holder[part]
            value = holder[key]
            if kind == "uri":
                short = swap(value)
                if short is not None:
                    holder[key] = short
            elif "http" in value:
                holder[key] = self._text(value, swap)

    def rewrite(self, payload: dict, delivery_id: int) -> dict:
        """The payload with its tracked URLs swapped (changed in place and returned)."""
        if not self.positions and not self.open_pixel:
            return payload
        swap = self._swap(delivery_id)
        if self.channel == "line":
            self._line(payload, swap)
        elif self.channel == "email":
            body = payload.get("html") or ""
            if body:
                def replace_href(match: re.Match) -> str:
                    short = swap(html.unescape(match.group(3)))
                    return match.group(0) if short is None else f"{match.group(1)}{match.group(2)}{short}{match.group(2)}"

                body = HREF_RE.sub(replace_href, body)
                if self.open_pixel:
                    pixel = (f'<img src="{self.public_url}/o/{self._signer.open(delivery_id)}.gif" width="1" height="1" '
                             'alt="" style="display:block;border:0;width:1px;height:1px">')
                    closing = re.search(r"</body\s*>", body, re.IGNORECASE)
                    body = body[: closing.start()] + pixel + body[closing.start():] if closing else body + pixel
                payload["html"] = body
            if payload.get("text"):
                payload["text"] = self._text(payload["text"], swap)
        elif self.channel == "sms" and payload.get("text"):
            payload["text"] = self._text(payload["text"], swap)
        return payload


def prepare(db: Session, *, workspace_id: int, campaign_id: int, variant_id: int | None, payload: dict,
            channel: str | None = None) -> LinkRewriter:
    """Store the links of one message of a campaign (once: repeated calls find the same rows) and return
    the rewriter for its recipients. `payload` is the channel payload (as `compile_content` builds it, or
    as rendered for anyone); the channel is inferred from its shape when not given."""
    channel = channel or _channel_of(payload)
    urls = find_urls(channel, payload)
    variant = variant_id or 0
    if urls:
        insert_ignore(db, Link, [
            {"workspace_id": workspace_id, "campaign_id": campaign_id, "variant_id": variant, "position": position, "url": url}
            for position, url in enumerate(urls)
        ], conflict=("workspace_id", "campaign_id", "variant_id", "position"))
    stored = db.execute(select(Link.position, Link.url, Link.id).where(
        Link.workspace_id == workspace_id, Link.campaign_id == campaign_id, Link.variant_id == variant))
    positions: dict[str, int] = {}
    link_ids: dict[int, int] = {}
    for position, url, link_id in stored:
        positions.setdefault(url, position)
        link_ids[position] = link_id
    return LinkRewriter(channel=channel, positions=positions, link_ids=link_ids, public_url=get_settings().public_url)


def _channel_of(payload: dict) -> str:
    if "messages" in payload:
        return "line"
    if "subject" in payload or "html" in payload:
        return "email"
    return "sms"
