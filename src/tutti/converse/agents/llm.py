"""The agent with an LLM (OpenAI-compatible): grounded generation and tool calling. Filled in below."""

from __future__ import annotations

from sqlalchemy.orm import Session


def client(db: Session, *, workspace_id: int):
    """The workspace's LLM client, or None when none is configured (then everything runs offline)."""
    try:
        from tutti.ai import llm
    except ImportError:
        return None
    try:
        from tutti.platform.config import get_settings

        return llm.client_for(get_settings())
    except Exception:  # noqa: BLE001 - a misconfigured LLM means offline, never a failed message
        return None


def decide(db, client, **kwargs):
    raise NotImplementedError
