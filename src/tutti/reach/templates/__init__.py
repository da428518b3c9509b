"""Message templates per channel (LINE, e-mail, SMS): validation against each channel's limits, sandboxed
Jinja2 personalisation compiled once and rendered fast, preview and test sends."""
