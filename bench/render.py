"""Personalised rendering speed: a typical LINE message (text + buttons with three variables) compiled once
and rendered per recipient, with and without tracked-link rewriting; a Jinja2-heavy template (if/for) for
comparison; and `load_contexts` for 2,000 contacts is measured by the tests, not here (it needs a database).

Prints one JSON line per figure. Target (issue 3): at least 20,000 personalised messages per second.

    .venv/bin/python bench/render.py [--count 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TUTTI_SECRET_KEY", "bench-secret")

from tutti.reach.templates import service
from tutti.reach.tracking.links import LinkRewriter, find_urls

TYPICAL = {"messages": [
    {"type": "text", "text": "{{ first_name | default('朋友') }}您好！春季新品 8 折，只到週日 👉 https://shop.example/spring?src=line"},
    {"type": "template", "altText": "春季新品 8 折", "template": {
        "type": "buttons", "thumbnailImageUrl": "https://img.example/spring.jpg", "title": "{{ city | default('全台') }}限定",
        "text": "{{ name | default('會員') }}，您有 {{ points | default(0) }} 點",
        "actions": [{"type": "uri", "label": "立即選購", "uri": "https://shop.example/spring"},
                    {"type": "uri", "label": "查看點數", "uri": "https://shop.example/points"},
                    {"type": "message", "label": "聯絡客服", "text": "我想問春季新品"}]}}]}
HEAVY = {"messages": [{"type": "text", "text": (
    "{% if tags and 'VIP' in tags %}VIP {{ name }}{% else %}{{ name | default('朋友') }}{% endif %}，"
    "{% for p in last_order.products %}{{ p }}{% if not loop.last %}、{% endif %}{% endfor %} 補貨了！"
    " https://shop.example/restock")}]}


def contexts(count: int) -> list[dict]:
    cities = ["台北市", "新北市", "台中市", "高雄市", None]
    out = []
    for i in range(count):
        c = {"contact_id": i, "name": f"會員{i}", "first_name": f"員{i}", "points": i % 5000, "tags": ["VIP"] if i % 7 == 0 else [],
             "last_order": {"products": ["耶加雪菲", "濾掛包"]}}
        if cities[i % 5]:
            c["city"] = cities[i % 5]
        out.append(c)
    return out


def measure(name: str, content: dict, people: list[dict], *, rewrite: bool) -> None:
    renderer = service.compile_content("line", service.validate("line", content))
    rewriter = None
    if rewrite:
        urls = find_urls("line", renderer.skeleton)
        rewriter = LinkRewriter(channel="line", positions={u: i for i, u in enumerate(urls)}, link_ids={},
                                public_url="https://tutti.example")
    started = time.perf_counter()
    for index, context in enumerate(people):
        payload = renderer.render(context)
        if rewriter:
            rewriter.rewrite(payload, index + 1)
    seconds = time.perf_counter() - started
    print(json.dumps({"figure": name, "messages": len(people), "seconds": round(seconds, 3),
                      "per_second": round(len(people) / seconds), "target_per_second": 20000,
                      "ratio_to_target": round(len(people) / seconds / 20000, 2)}), flush=True)


def reference(people: list[dict]) -> None:
    """The same number of bare deep copies of the payload: the machine's speed today, to read the figures
    above against (shared machines vary several-fold from one hour to the next)."""
    import orjson

    frozen = orjson.dumps(TYPICAL)
    started = time.perf_counter()
    for _ in people:
        orjson.loads(frozen)
    seconds = time.perf_counter() - started
    print(json.dumps({"figure": "reference.payload_copy", "messages": len(people), "seconds": round(seconds, 3),
                      "per_second": round(len(people) / seconds)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    people = contexts(args.count)
    measure("render.line_text_buttons", TYPICAL, people, rewrite=False)
    measure("render.line_text_buttons+tracked_links", TYPICAL, people, rewrite=True)
    measure("render.line_jinja_if_for+tracked_links", HEAVY, people, rewrite=True)
    reference(people)


if __name__ == "__main__":
    main()
