"""LINE message objects checked against the Messaging API's limits, so a broadcast is never refused by
LINE half-way through. Limits: https://developers.line.biz/en/reference/messaging-api/#message-objects.
Strings with Jinja2 are checked as written (their rendered length is known only per recipient)."""

from __future__ import annotations

import json

from tutti.reach.templates.problems import Problems, has_jinja

MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_URL = 2000
MAX_ALT_TEXT = 400
MAX_LABEL = 20
MAX_QUICK_REPLIES = 13
MAX_FLEX_BYTES = 30 * 1024
MAX_CAROUSEL_COLUMNS = 10
MAX_FLEX_BUBBLES = 12
MESSAGE_TYPES = ("text", "image", "sticker", "template", "flex")
ACTION_TYPES = ("uri", "message", "postback", "datetimepicker", "camera", "cameraRoll", "location", "clipboard")
FLEX_BLOCKS = ("header", "hero", "body", "footer")
FLEX_COMPONENTS = ("box", "button", "image", "video", "icon", "text", "span", "separator", "filler")


def _text(problems: Problems, path: str, value, *, limit: int, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            problems.add(path, "is required")
        return
    if not isinstance(value, str):
        problems.add(path, "must be text")
    elif len(value) > limit:
        problems.add(path, f"has {len(value)} characters; LINE allows at most {limit}")


def _https(problems: Problems, path: str, value, *, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            problems.add(path, "is required")
        return
    if not isinstance(value, str):
        problems.add(path, "must be a URL")
        return
    if len(value) > MAX_URL:
        problems.add(path, f"has {len(value)} characters; LINE allows at most {MAX_URL}")
    elif not has_jinja(value) and not value.startswith("https://"):
        problems.add(path, "must be an https:// URL")


def check_action(problems: Problems, path: str, action, *, label_required: bool = True) -> None:
    if not isinstance(action, dict):
        problems.add(path, "must be an action object")
        return
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        problems.add(f"{path}.type", f"'{kind}' is not a LINE action type; use one of {', '.join(ACTION_TYPES)}")
        return
    _text(problems, f"{path}.label", action.get("label"), limit=MAX_LABEL, required=label_required)
    if kind == "uri":
        uri = action.get("uri")
        _text(problems, f"{path}.uri", uri, limit=1000)
        if isinstance(uri, str) and uri and not has_jinja(uri) and not uri.startswith(("http://", "https://", "line://", "tel:")):
            problems.add(f"{path}.uri", "must start with http://, https://, line:// or tel:")
    elif kind == "message":
        _text(problems, f"{path}.text", action.get("text"), limit=300)
    elif kind == "postback":
        _text(problems, f"{path}.data", action.get("data"), limit=300)
        _text(problems, f"{path}.displayText", action.get("displayText"), limit=300, required=False)


def _actions(problems: Problems, path: str, actions, *, low: int, high: int) -> int:
    if not isinstance(actions, list) or not low <= len(actions) <= high:
        count = len(actions) if isinstance(actions, list) else 0
        problems.add(path, f"needs {low} to {high} actions, has {count}")
        if not isinstance(actions, list):
            return 0
    for index, action in enumerate(actions):
        if index >= high:
            problems.add(f"{path}[{index}]", f"is one action too many: at most {high}")
            continue
        check_action(problems, f"{path}[{index}]", action)
    return len(actions)


def _buttons(problems: Problems, path: str, template: dict) -> None:
    with_image = bool(template.get("thumbnailImageUrl")) or bool(template.get("title"))
    _https(problems, f"{path}.thumbnailImageUrl", template.get("thumbnailImageUrl"), required=False)
    _text(problems, f"{path}.title", template.get("title"), limit=40, required=False)
    _text(problems, f"{path}.text", template.get("text"), limit=60 if with_image else 160)
    _actions(problems, f"{path}.actions", template.get("actions"), low=1, high=4)
    if template.get("defaultAction") is not None:
        check_action(problems, f"{path}.defaultAction", template["defaultAction"], label_required=False)


def _carousel(problems: Problems, path: str, template: dict) -> None:
    columns = template.get("columns")
    if not isinstance(columns, list) or not 1 <= len(columns) <= MAX_CAROUSEL_COLUMNS:
        problems.add(f"{path}.columns", f"needs 1 to {MAX_CAROUSEL_COLUMNS} columns, has {len(columns) if isinstance(columns, list) else 0}")
        if not isinstance(columns, list):
            return
    counts = []
    for index, column in enumerate(columns[:MAX_CAROUSEL_COLUMNS + 1]):
        where = f"{path}.columns[{index}]"
        if not isinstance(column, dict):
            problems.add(where, "must be a column object")
            continue
        with_image = bool(column.get("thumbnailImageUrl")) or bool(column.get("title"))
        _https(problems, f"{where}.thumbnailImageUrl", column.get("thumbnailImageUrl"), required=False)
        _text(problems, f"{where}.title", column.get("title"), limit=40, required=False)
        _text(problems, f"{where}.text", column.get("text"), limit=60 if with_image else 120)
        counts.append(_actions(problems, f"{where}.actions", column.get("actions"), low=1, high=3))
    if len(set(counts)) > 1:
        problems.add(f"{path}.columns", f"every column needs the same number of actions (they have {', '.join(map(str, counts))})")


def _template(problems: Problems, path: str, message: dict) -> None:
    _text(problems, f"{path}.altText", message.get("altText"), limit=MAX_ALT_TEXT)
    template = message.get("template")
    where = f"{path}.template"
    if not isinstance(template, dict):
        problems.add(where, "is required: an object with type buttons, confirm, carousel or image_carousel")
        return
    kind = template.get("type")
    if kind == "buttons":
        _buttons(problems, where, template)
    elif kind == "confirm":
        _text(problems, f"{where}.text", template.get("text"), limit=240)
        actions = template.get("actions")
        if not isinstance(actions, list) or len(actions) != 2:
            problems.add(f"{where}.actions", "a confirm template needs exactly 2 actions")
        else:
            for index, action in enumerate(actions):
                check_action(problems, f"{where}.actions[{index}]", action)
    elif kind == "carousel":
        _carousel(problems, where, template)
    elif kind == "image_carousel":
        columns = template.get("columns")
        if not isinstance(columns, list) or not 1 <= len(columns) <= MAX_CAROUSEL_COLUMNS:
            problems.add(f"{where}.columns", f"needs 1 to {MAX_CAROUSEL_COLUMNS} columns")
            return
        for index, column in enumerate(columns):
            column = column if isinstance(column, dict) else {}
            _https(problems, f"{where}.columns[{index}].imageUrl", column.get("imageUrl"))
            check_action(problems, f"{where}.columns[{index}].action", column.get("action"), label_required=False)
    else:
        problems.add(f"{where}.type", f"'{kind}' is not a template type; use buttons, confirm, carousel or image_carousel")


def _flex_component(problems: Problems, path: str, component, depth: int = 0) -> None:
    if depth > 10:
        problems.add(path, "is nested too deeply")
        return
    if not isinstance(component, dict):
        problems.add(path, "must be a component object")
        return
    kind = component.get("type")
    if kind not in FLEX_COMPONENTS:
        problems.add(f"{path}.type", f"'{kind}' is not a Flex component type")
        return
    if kind == "box":
        if component.get("layout") not in ("horizontal", "vertical", "baseline"):
            problems.add(f"{path}.layout", "must be horizontal, vertical or baseline")
        contents = component.get("contents")
        if not isinstance(contents, list):
            problems.add(f"{path}.contents", "must be a list of components")
        else:
            for index, child in enumerate(contents):
                _flex_component(problems, f"{path}.contents[{index}]", child, depth + 1)
    elif kind == "text":
        if not component.get("text") and not component.get("contents"):
            problems.add(f"{path}.text", "is required")
    elif kind in ("image", "icon"):
        _https(problems, f"{path}.url", component.get("url"))
    elif kind == "button":
        check_action(problems, f"{path}.action", component.get("action"))
    if kind != "button" and component.get("action") is not None:
        check_action(problems, f"{path}.action", component["action"], label_required=False)


def _bubble(problems: Problems, path: str, bubble) -> None:
    if not isinstance(bubble, dict) or bubble.get("type") != "bubble":
        problems.add(f"{path}.type", "must be bubble")
        return
    if not any(bubble.get(block) for block in FLEX_BLOCKS):
        problems.add(path, "needs at least one of header, hero, body, footer")
    for block in FLEX_BLOCKS:
        if bubble.get(block) is not None:
            _flex_component(problems, f"{path}.{block}", bubble[block])


def _flex(problems: Problems, path: str, message: dict) -> None:
    _text(problems, f"{path}.altText", message.get("altText"), limit=MAX_ALT_TEXT)
    contents = message.get("contents")
    where = f"{path}.contents"
    if not isinstance(contents, dict):
        problems.add(where, "is required: a bubble or carousel object")
        return
    size = len(json.dumps(contents, ensure_ascii=False).encode())
    if size > MAX_FLEX_BYTES:
        problems.add(where, f"is {size // 1024} KB; LINE allows at most 30 KB")
    kind = contents.get("type")
    if kind == "bubble":
        _bubble(problems, where, contents)
    elif kind == "carousel":
        bubbles = contents.get("contents")
        if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= MAX_FLEX_BUBBLES:
            problems.add(f"{where}.contents", f"a Flex carousel needs 1 to {MAX_FLEX_BUBBLES} bubbles")
            return
        for index, bubble in enumerate(bubbles):
            _bubble(problems, f"{where}.contents[{index}]", bubble)
    else:
        problems.add(f"{where}.type", f"'{kind}' is not a Flex container; use bubble or carousel")


def _quick_reply(problems: Problems, path: str, quick_reply) -> None:
    items = quick_reply.get("items") if isinstance(quick_reply, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_QUICK_REPLIES:
        problems.add(f"{path}.items", f"needs 1 to {MAX_QUICK_REPLIES} quick reply items, has {len(items) if isinstance(items, list) else 0}")
        return
    for index, item in enumerate(items):
        where = f"{path}.items[{index}]"
        if not isinstance(item, dict) or item.get("type") != "action":
            problems.add(where, 'must be {"type": "action", "action": {...}}')
            continue
        _https(problems, f"{where}.imageUrl", item.get("imageUrl"), required=False)
        check_action(problems, f"{where}.action", item.get("action"))


def check_message(problems: Problems, path: str, message) -> None:
    if not isinstance(message, dict):
        problems.add(path, "must be a message object")
        return
    kind = message.get("type")
    if kind == "text":
        _text(problems, f"{path}.text", message.get("text"), limit=MAX_TEXT)
    elif kind == "image":
        _https(problems, f"{path}.originalContentUrl", message.get("originalContentUrl"))
        _https(problems, f"{path}.previewImageUrl", message.get("previewImageUrl"))
    elif kind == "sticker":
        for key in ("packageId", "stickerId"):
            if not message.get(key):
                problems.add(f"{path}.{key}", "is required")
    elif kind == "template":
        _template(problems, path, message)
    elif kind == "flex":
        _flex(problems, path, message)
    else:
        problems.add(f"{path}.type", f"'{kind}' is not a supported message type; use one of {', '.join(MESSAGE_TYPES)}")
        return
    if message.get("quickReply") is not None:
        _quick_reply(problems, f"{path}.quickReply", message["quickReply"])


def validate(content: dict, problems: Problems) -> dict:
    messages = content.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        count = len(messages) if isinstance(messages, list) else 0
        problems.add("messages", f"needs 1 to {MAX_MESSAGES} messages, has {count}")
        if not isinstance(messages, list):
            return content
    for index, message in enumerate(messages[:MAX_MESSAGES + 1]):
        check_message(problems, f"messages[{index}]", message)
    unknown = sorted(set(content) - {"messages"})
    if unknown:
        problems.add(unknown[0], "is not part of a LINE template; put everything under messages")
    return {"messages": messages}
