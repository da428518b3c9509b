"""`tutti campaign …`: list, send, follow and nudge broadcasts from a shell."""

from __future__ import annotations

import json

import typer

campaign_app = typer.Typer(help="Broadcast campaigns.", no_args_is_help=True)


def _print(value) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@campaign_app.command("list")
def list_campaigns(workspace: int = typer.Option(..., help="workspace id")) -> None:
    from tutti.cli import database, run_service
    from tutti.reach.campaigns import service

    def run():
        with database().read_session() as db:
            return [{"id": c.id, "name": c.name, "status": c.status, **service.progress(c)}
                    for c in service.list_campaigns(db, workspace_id=workspace)]

    _print(run_service(run))


@campaign_app.command("send")
def send(campaign: int = typer.Argument(..., help="campaign id"), workspace: int = typer.Option(..., help="workspace id")) -> None:
    """Send a draft or scheduled campaign now (the worker does the sending)."""
    from tutti.cli import database, run_service
    from tutti.platform.audit import Actor
    from tutti.reach.campaigns import service

    def run():
        with database().session() as db:
            return service.progress(service.send_now(db, workspace_id=workspace, campaign_id=campaign, actor=Actor.cli()))

    _print(run_service(run))


@campaign_app.command("progress")
def progress(campaign: int = typer.Argument(..., help="campaign id"), workspace: int = typer.Option(..., help="workspace id")) -> None:
    from tutti.cli import database, run_service
    from tutti.reach.campaigns import service

    def run():
        with database().read_session() as db:
            return service.progress(service.get(db, workspace_id=workspace, campaign_id=campaign))

    _print(run_service(run))


@campaign_app.command("kick")
def kick(campaign: int = typer.Argument(..., help="campaign id")) -> None:
    """Queue the send job of a campaign again now, instead of waiting for the one-minute tick (after a worker
    was killed, say). Harmless when a sender is running: the new job finds the campaign's lock held."""
    from tutti.cli import database
    from tutti.reach.campaigns.jobs import send_campaign

    database()
    send_campaign(campaign)
    _print({"queued": campaign})
