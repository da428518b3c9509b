"""A small client for OpenAI-compatible chat completions (OpenAI, Azure-style gateways, vLLM, Ollama, …).

Plain httpx, no SDK: one POST to `{base_url}/chat/completions`. It supports tool calling and structured
output (`response_format` json_schema) and returns a parsed `ChatResult`. Every way a call can fail —
connection refused, timeout, an HTTP error, a body that is not the protocol, tool arguments or structured
output that are not valid JSON or do not fit the schema — raises `LLMError` with a `kind`, so callers
turn any failure into a hand-off with one `except`.

Nothing here is required: with no `llm_base_url` configured `client_for` returns None and Tutti works
offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT = 20.0


class LLMError(Exception):
    """A failed chat call. `kind` is one of: connection, timeout, http, protocol, malformed, schema."""

    def __init__(self, kind: str, message: str, *, status: int | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict


@dataclass
class ChatResult:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    parsed: Any = None  # the structured output when json_schema was given
    finish_reason: str | None = None
    model: str | None = None
    usage: dict = field(default_factory=dict)


class LLM:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"LLM(base_url={self.base_url!r}, model={self.model!r})"

    def chat(
        self,
        messages: list[dict],
        *,
        tools: list[dict] | None = None,
        tool_choice: Any = None,
        json_schema: dict | None = None,
        schema_name: str = "answer",
        timeout: float | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """One chat completion. `tools` are OpenAI tool definitions ({"type": "function", "function":
        {...}}); `json_schema` asks for structured output, which is parsed and checked against the schema
        (result.parsed)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
            }
        data = self._post("/chat/completions", body, timeout)
        return _parse_chat(data, json_schema)

    def _post(self, path: str, body: dict, timeout: float | None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        limit = timeout if timeout is not None else self.timeout
        try:
            with httpx.Client(timeout=httpx.Timeout(limit), transport=self._transport) as client:
                response = client.post(self.base_url + path, json=body, headers=headers)
        except httpx.TimeoutException as error:
            raise LLMError("timeout", f"no answer within {limit:g} s") from error
        except httpx.HTTPError as error:
            raise LLMError("connection", str(error) or type(error).__name__) from error
        if response.status_code >= 400:
            raise LLMError(
                "http", f"HTTP {response.status_code}: {response.text[:200]}", status=response.status_code
            )
        try:
            data = response.json()
        except ValueError as error:
            raise LLMError("protocol", "the response is not JSON") from error
        if not isinstance(data, dict):
            raise LLMError("protocol", "the response is not a JSON object")
        return data


def _parse_chat(data: dict, json_schema: dict | None) -> ChatResult:
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as error:
        raise LLMError("protocol", "no choices[0].message in the response") from error
    if not isinstance(message, dict):
        raise LLMError("protocol", "choices[0].message is not an object")
    calls = []
    for raw in message.get("tool_calls") or []:
        try:
            function = raw["function"]
            name = function["name"]
            arguments = function.get("arguments") or "{}"
        except (KeyError, TypeError) as error:
            raise LLMError("protocol", "a tool call without function.name") from error
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as error:
                raise LLMError("malformed", f"arguments of tool {name!r} are not JSON") from error
        if not isinstance(arguments, dict):
            raise LLMError("malformed", f"arguments of tool {name!r} are not an object")
        calls.append(ToolCall(id=str(raw.get("id") or ""), name=str(name), arguments=arguments))
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise LLMError("protocol", "message.content is not a string")
    parsed = None
    if json_schema is not None and not calls:
        if not content:
            raise LLMError("malformed", "structured output was asked for but the message is empty")
        try:
            parsed = json.loads(_strip_fence(content))
        except ValueError as error:
            raise LLMError("malformed", "structured output is not valid JSON") from error
        problem = validate(parsed, json_schema)
        if problem:
            raise LLMError("schema", problem)
    return ChatResult(
        content=content,
        tool_calls=calls,
        parsed=parsed,
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
        usage=data.get("usage") or {},
    )


def _strip_fence(text: str) -> str:
    """Some servers wrap JSON in a ```json fence even when asked for a schema."""
    value = text.strip()
    if value.startswith("```"):
        value = value.split("\n", 1)[1] if "\n" in value else ""
        if value.rstrip().endswith("```"):
            value = value.rstrip()[:-3]
    return value


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(value: Any, schema: dict, where: str = "$") -> str | None:
    """The first way `value` breaks `schema` (a practical subset of JSON Schema: type, properties,
    required, additionalProperties false, items, enum, minimum/maximum, minLength/maxLength), or None."""
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is(value, k) for k in kinds):
            return f"{where}: expected {kind}, got {type(value).__name__}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}: missing {name!r}"
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(properties))
            if extra:
                return f"{where}: unexpected {extra[0]!r}"
        for name, sub in properties.items():
            if name in value:
                problem = validate(value[name], sub, f"{where}.{name}")
                if problem:
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problem = validate(item, schema["items"], f"{where}[{index}]")
            if problem:
                return problem
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{where}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: longer than {schema['maxLength']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: above {schema['maximum']}"
    return None


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return True if expected is None else isinstance(value, expected)


def client_for(settings_or_workspace: Any = None) -> LLM | None:
    """The configured chat model, or None when no LLM is configured (then everything runs offline).

    Accepts the Settings, or any object carrying `llm_base_url`/`llm_model`/`llm_api_key` (a workspace
    with its own model later); anything else falls back to the process settings."""
    source = settings_or_workspace
    if source is None or not hasattr(source, "llm_base_url"):
        from tutti.platform.config import get_settings

        source = get_settings()
    base_url = getattr(source, "llm_base_url", None)
    if not base_url:
        return None
    return LLM(
        base_url=base_url,
        model=getattr(source, "llm_model", None) or "gpt-4o-mini",
        api_key=getattr(source, "llm_api_key", None),
        timeout=float(getattr(source, "llm_timeout", None) or DEFAULT_TIMEOUT),
    )
