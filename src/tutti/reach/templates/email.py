"""E-mail templates: a subject, an HTML and/or a text part. Every e-mail carries an unsubscribe link (added
when the template has none) and the `List-Unsubscribe` + `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
headers (RFC 8058), pointing at the recipient's own signed `/u/{token}` address."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import ClassVar

from tutti.reach.templates.problems import Problems

MAX_SUBJECT = 255
MAX_BODY = 500_000
UNSUBSCRIBE_VARIABLE = "unsubscribe_url"
HTML_FOOTER = (
    '\n<p style="font-size:12px;color:#888;text-align:center">'
    '<a href="{{ unsubscribe_url }}" style="color:#888">取消訂閱 Unsubscribe</a></p>\n'
)
TEXT_FOOTER = "\n\n--\n取消訂閱 Unsubscribe: {{ unsubscribe_url }}\n"
UNSUBSCRIBE_HEADERS = {
    "List-Unsubscribe": "<{{ unsubscribe_url }}>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def validate(content: dict, problems: Problems) -> dict:
    subject = content.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        problems.add("subject", "is required")
    elif len(subject) > MAX_SUBJECT:
        problems.add("subject", f"has {len(subject)} characters; at most {MAX_SUBJECT}")
    elif "\n" in subject or "\r" in subject:
        problems.add("subject", "must be one line")
    body_html, body_text = content.get("html") or "", content.get("text") or ""
    for key, value in (("html", body_html), ("text", body_text)):
        if not isinstance(value, str):
            problems.add(key, "must be text")
        elif len(value) > MAX_BODY:
            problems.add(key, f"is {len(value)} characters; at most {MAX_BODY}")
    if not (isinstance(body_html, str) and body_html.strip()) and not (isinstance(body_text, str) and body_text.strip()):
        problems.add("html", "an e-mail needs an HTML part, a text part or both")
    unknown = sorted(set(content) - {"subject", "html", "text"})
    if unknown:
        problems.add(unknown[0], "is not part of an e-mail template (subject, html, text)")
    out = {"subject": (subject or "").strip() if isinstance(subject, str) else subject}
    if body_html:
        out["html"] = body_html
    if body_text:
        out["text"] = body_text
    return out


class _TextExtractor(HTMLParser):
    BLOCKS: ClassVar[set[str]] = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "article"}
    SKIP: ClassVar[set[str]] = {"style", "script", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("• ")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def text_from_html(body: str) -> str:
    """A readable text part made from the HTML one: block elements become lines, links keep their URL."""
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = html.unescape("".join(parser.parts))
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def finish(content: dict) -> dict:
    """The content as sent: a text part from the HTML when missing, the unsubscribe link and headers."""
    body_html = content.get("html") or ""
    body_text = content.get("text") or ""
    if body_html and not body_text:
        body_text = text_from_html(body_html)
    if body_html and UNSUBSCRIBE_VARIABLE not in body_html:
        closing = re.search(r"</body\s*>", body_html, re.IGNORECASE)
        body_html = body_html[: closing.start()] + HTML_FOOTER + body_html[closing.start():] if closing else body_html + HTML_FOOTER
    if body_text and UNSUBSCRIBE_VARIABLE not in body_text:
        body_text = body_text.rstrip("\n") + TEXT_FOOTER
    return {"subject": content.get("subject") or "", "html": body_html, "text": body_text, "headers": dict(UNSUBSCRIBE_HEADERS)}
