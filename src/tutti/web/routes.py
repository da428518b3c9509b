"""Mounting every part's routers. Each part owns its routes; this is the one list of them."""

from __future__ import annotations

from fastapi import FastAPI


def mount_all(app: FastAPI) -> None:
    from tutti.audience import api as audience_api

    app.include_router(audience_api.router, prefix="/api/v1")
    from tutti.audience import imports_api

    app.include_router(imports_api.router, prefix="/api/v1")
    from tutti.reach.segments import api as segments_api

    app.include_router(segments_api.router, prefix="/api/v1")
    from tutti.reach.templates import api as templates_api

    app.include_router(templates_api.router, prefix="/api/v1")
    from tutti.reach.campaigns import api as campaigns_api

    app.include_router(campaigns_api.router, prefix="/api/v1")
    from tutti.reach.tracking import api as reports_api

    app.include_router(reports_api.router, prefix="/api/v1")
    from tutti.reach.tracking import public as tracking_public

    app.include_router(tracking_public.router)  # /l/{code}, /o/{code}.gif, /u/{token}: addresses in messages
    from tutti.platform import api as platform_api

    app.include_router(platform_api.router, prefix="/api/v1")
    from tutti.converse import api as converse_api

    app.include_router(converse_api.router, prefix="/api/v1")  # conversations, teams, agent-config, converse/metrics
    from tutti.converse.knowledge import api as knowledge_api

    app.include_router(knowledge_api.router, prefix="/api/v1")
    from tutti.channels import webhooks as channel_webhooks

    app.include_router(channel_webhooks.router)  # POST /webhooks/line/{channel_id}: LINE's inbound events
    from tutti.channels import api as channels_api

    app.include_router(channels_api.router, prefix="/api/v1")
    from tutti.audience import tracking_api

    app.include_router(tracking_api.router)  # Segment's paths: /v1/identify, /v1/batch, …
    from tutti.audience import ui as audience_ui
    from tutti.platform import ui as platform_ui
    from tutti.web import session as ui_session

    ui_session.install(app)  # web UI: login redirects and error pages for the routes below
    app.include_router(platform_ui.router)
    app.include_router(audience_ui.router)
    from tutti.reach.templates import ui as templates_ui
    from tutti.reach.tracking import ui as reports_ui

    app.include_router(templates_ui.router)
    app.include_router(reports_ui.router)
    from tutti.reach.campaigns import ui as campaigns_ui

    app.include_router(campaigns_ui.router)  # /campaigns: list, wizard, live progress
    from tutti.audience import import_ui

    app.include_router(import_ui.router)
    from tutti.reach.segments import ui as segments_ui

    app.include_router(segments_ui.router)  # /segments: list and builder
    from tutti.channels import ui as channels_ui

    app.include_router(channels_ui.router)  # /channels
    from tutti.converse.widget import api as widget_api

    widget_api.install(app)  # CORS per widget key for /widget/api/…
    app.include_router(widget_api.router)  # /widget.js and the widget's public endpoints
    from tutti.converse.widget import shop as demo_shop

    app.include_router(demo_shop.router)  # /shop: the demo brand's storefront with the widget
    from tutti.converse.inbox import ui as inbox_ui

    app.include_router(inbox_ui.router)  # /inbox, its live events, canned responses, metrics, widget settings
    from tutti.converse.knowledge import ui as knowledge_ui

    app.include_router(knowledge_ui.router)  # /knowledge: the list, editor, import and gaps pages
