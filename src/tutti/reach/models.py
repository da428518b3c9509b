"""The tables of reach: importing this module registers all of them (migrations and tests rely on it)."""
