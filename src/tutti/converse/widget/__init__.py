"""The website chat widget: one script tag, public endpoints keyed by a per-workspace widget key."""
