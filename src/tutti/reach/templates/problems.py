"""Collecting validation problems, each naming its path (`messages[1].template.actions[4]`)."""

from __future__ import annotations

from tutti.platform.errors import InvalidInput


class Problems:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"field": path, "message": f"{path}: {message}"})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidInput(first["message"] + more, field=first["field"], details=self.items)


def has_jinja(value: str) -> bool:
    return "{{" in value or "{%" in value
