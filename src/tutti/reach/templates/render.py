"""Personalisation: sandboxed Jinja2, compiled once per message and rendered once per recipient.

Only the strings that hold Jinja2 are templates; the rest of the payload is copied as is. A missing
variable renders empty (and `default` gives the fallback: `{{ name | default("朋友") }}`); None never
prints as "None". The e-mail HTML part is autoescaped, so a name like `<b>` arrives as text; LINE and SMS
text is not escaped (it is not HTML).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tutti.platform.errors import InvalidInput
from tutti.reach.templates.fastpath import Fallback, compile_simple
from tutti.reach.templates.problems import has_jinja


def _finalize(value):
    return "" if value is None else value


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=autoescape, finalize=_finalize,
                                        keep_trailing_newline=True, auto_reload=False, cache_size=0)
    env.filters["money"] = lambda value, digits=0: f"{float(value or 0):,.{digits}f}"
    return env


TEXT_ENV = _environment(False)
HTML_ENV = _environment(True)
HTML_FIELDS = frozenset({("html",)})


def path_text(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def compile_text(source: str, *, field: str, html: bool = False):
    env = HTML_ENV if html else TEXT_ENV
    try:
        return env.from_string(source)
    except TemplateSyntaxError as error:
        message = f"{field}: template error on line {error.lineno}: {error.message}"
        raise InvalidInput(message, field=field, details=[{"field": field, "message": message, "line": error.lineno}]) from None


def _walk(value, path: tuple, found: list) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _walk(child, path + (key,), found)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _walk(child, path + (index,), found)
    elif isinstance(value, str) and has_jinja(value):
        found.append((path, value))


@dataclass
class _Slot:
    parent: tuple  # path to the dict or list holding the string
    key: object
    render: Callable[[dict], str]  # the Jinja2 template's render
    field: str
    fast: Callable[[dict], str] | None = None  # the same output for simple substitutions (fastpath)


class Renderer:
    """A compiled message: `render(context)` gives the channel payload for one recipient."""

    def __init__(self, channel: str, payload: dict, *, html_paths: frozenset = HTML_FIELDS):
        self.channel = channel
        self.skeleton = payload
        self._frozen = orjson.dumps(payload)
        found: list = []
        _walk(payload, (), found)
        errors = []
        self.slots: list[_Slot] = []
        for path, source in found:
            field = path_text(path)
            try:
                template = compile_text(source, field=field, html=path in html_paths)
            except InvalidInput as error:
                errors.extend(error.details or [])
                continue
            html = path in html_paths
            fast = compile_simple(HTML_ENV if html else TEXT_ENV, source, html=html)
            self.slots.append(_Slot(path[:-1], path[-1], template.render, field, fast))
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidInput(errors[0]["message"] + more, field=errors[0]["field"], details=errors)

    @property
    def personalised(self) -> bool:
        return bool(self.slots)

    def render(self, context: dict) -> dict:
        payload = orjson.loads(self._frozen)  # a deep copy, several times faster than copy.deepcopy
        for slot in self.slots:
            target = payload
            for part in slot.parent:
                target = target[part]
            try:
                if slot.fast is not None:
                    try:
                        target[slot.key] = slot.fast(context)
                        continue
                    except Fallback:
                        pass
                target[slot.key] = slot.render(context)
            except Exception as error:  # noqa: BLE001 - a sandbox refusal or a bad filter argument: name the field
                raise InvalidInput(f"{slot.field}: could not be rendered: {error}", field=slot.field) from None
        return payload
