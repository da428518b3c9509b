"""Reach's API-wide cases (tenancy, roles): each area keeps its own module `api_cases_<area>.py`
(TENANCY, ROLES, and a seeder appended to tests.api_world.SEEDERS); this merges them."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

TENANCY: dict = {}
ROLES: dict = {}

for _info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    if _info.name.startswith("api_cases_"):
        _module = importlib.import_module(f"tests.reach.{_info.name}")
        TENANCY.update(getattr(_module, "TENANCY", {}))
        ROLES.update(getattr(_module, "ROLES", {}))
