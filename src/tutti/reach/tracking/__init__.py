"""Campaign tracking: short links with signed per-recipient codes, clicks, e-mail opens, conversions
(orders within the attribution window) and campaign reports with lift against the hold-out."""
