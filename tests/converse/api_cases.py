"""Tenancy and roles cases of Converse's API routes, merged from one module per area.

Each area keeps its cases in tests/converse/api_cases_<area>.py (TENANCY, ROLES, and a seeder appended to
tests.api_world.SEEDERS); this module gathers them for tests/part_cases.py."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

TENANCY: dict = {}
ROLES: dict = {}

for _info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    if _info.name.startswith("api_cases_"):
        _module = importlib.import_module(f"tests.converse.{_info.name}")
        TENANCY.update(getattr(_module, "TENANCY", {}))
        ROLES.update(getattr(_module, "ROLES", {}))
