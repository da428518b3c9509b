"""SMS text and how many parts it is sent in: GSM-7 texts fit 160 characters in one part (153 per part
when split), anything else (Chinese, emoji) is UCS-2: 70 in one part, 67 per part when split."""

from __future__ import annotations

from tutti.reach.templates.problems import Problems

MAX_SEGMENTS = 10
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")  # each takes two septets (an escape and the character)


def segments(text: str) -> dict:
    """{"encoding", "characters", "segments", "per_segment"} for a text as it will be sent."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units: emoji take two
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        count = 1 if units else 0
        per = single
    else:
        count = -(-units // multi)
        per = multi
    return {"encoding": encoding, "characters": units, "segments": count, "per_segment": per}


def validate(content: dict, problems: Problems) -> dict:
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.add("text", "is required")
        return content
    info = segments(text)
    if info["segments"] > MAX_SEGMENTS:
        problems.add("text", f"needs {info['segments']} SMS parts; at most {MAX_SEGMENTS} are sent")
    unknown = sorted(set(content) - {"text"})
    if unknown:
        problems.add(unknown[0], "is not part of an SMS template (only text)")
    return {"text": text}
