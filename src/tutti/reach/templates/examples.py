"""Starting points for the editor: one example per LINE message kind, and a first message per channel."""

from __future__ import annotations

_BUTTON = {"type": "uri", "label": "立即選購", "uri": "https://shop.example.com/spring"}

LINE_EXAMPLES = {
    "text": {"type": "text", "text": "{{ first_name | default('朋友') }}您好！春季新品 8 折，只到週日 👉 https://shop.example.com/spring"},
    "image": {"type": "image", "originalContentUrl": "https://shop.example.com/img/spring.jpg",
              "previewImageUrl": "https://shop.example.com/img/spring_s.jpg"},
    "buttons": {"type": "template", "altText": "春季新品 8 折", "template": {
        "type": "buttons", "thumbnailImageUrl": "https://shop.example.com/img/spring.jpg", "title": "春季新品",
        "text": "{{ name | default('親愛的會員') }}，新品 8 折", "actions": [_BUTTON, {"type": "message", "label": "問客服", "text": "我想問新品"}]}},
    "carousel": {"type": "template", "altText": "本週精選", "template": {"type": "carousel", "columns": [
        {"title": "耶加雪菲", "text": "花香調，淺焙", "actions": [{"type": "uri", "label": "看看", "uri": "https://shop.example.com/p/1"}]},
        {"title": "曼特寧", "text": "醇厚，深焙", "actions": [{"type": "uri", "label": "看看", "uri": "https://shop.example.com/p/2"}]}]}},
    "flex": {"type": "flex", "altText": "您的點數", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
        {"type": "text", "text": "{{ name | default('會員') }} 的點數", "weight": "bold", "size": "lg"},
        {"type": "text", "text": "{{ points | default(0) }} 點", "size": "xxl", "color": "#4f46e5"}]},
        "footer": {"type": "box", "layout": "vertical", "contents": [{"type": "button", "style": "primary", "action": _BUTTON}]}}},
    "quick_reply": {"type": "text", "text": "想看哪一類？", "quickReply": {"items": [
        {"type": "action", "action": {"type": "message", "label": "咖啡豆", "text": "咖啡豆"}},
        {"type": "action", "action": {"type": "message", "label": "器材", "text": "器材"}}]}},
}

STARTERS = {
    "line": {"messages": [LINE_EXAMPLES["text"]]},
    "email": {"subject": "{{ first_name | default('朋友') }}，春季新品 8 折",
              "html": "<h1>春季新品上市</h1>\n<p>{{ name | default('親愛的會員') }}您好，</p>\n"
                      "<p>全館新品 8 折，只到週日。<a href=\"https://shop.example.com/spring\">立即選購</a></p>"},
    "sms": {"text": "【小島咖啡】{{ first_name | default('朋友') }}您好，春季新品8折到週日 https://shop.example.com/spring"},
}
