"""The API-wide cases (tenancy, roles) that each part keeps beside its own tests.

A part's tests/<part>/api_cases.py defines TENANCY (same shape as test_tenancy.CASES), ROLES (same shape
as test_roles.ROUTES) and may append a seeder to tests.api_world.SEEDERS. Keeping them per part means a
new route is covered next to the code that adds it.
"""

from __future__ import annotations

import importlib

PARTS = ("channels", "reach", "converse")
TENANCY: dict = {}
ROLES: dict = {}

for _part in PARTS:
    try:
        _module = importlib.import_module(f"tests.{_part}.api_cases")
    except ModuleNotFoundError as error:
        if error.name != f"tests.{_part}.api_cases":
            raise
        continue
    TENANCY.update(getattr(_module, "TENANCY", {}))
    ROLES.update(getattr(_module, "ROLES", {}))
