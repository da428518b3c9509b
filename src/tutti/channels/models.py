"""The tables of channels: importing this module registers all of them (migrations and tests rely on it)."""
