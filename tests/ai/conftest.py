"""Fixtures of the AI tests."""

from tests.fake_openai import fake_openai  # noqa: F401  (the fixture)
