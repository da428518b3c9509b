"""The `tutti` command."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="Tutti: customer data, marketing, AI service and analytics in one self-hosted app.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
workspace_app = typer.Typer(help="Workspaces (one per brand).", no_args_is_help=True)
user_app = typer.Typer(help="People who sign in.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(user_app, name="user")

from tutti.reach.campaigns.cli import campaign_app  # noqa: E402 - the `tutti campaign` commands

app.add_typer(campaign_app, name="campaign")

from tutti.converse.knowledge.cli import kb_app  # noqa: E402 - the `tutti kb` commands

app.add_typer(kb_app, name="kb")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"tutti: {message}", err=True)
    raise typer.Exit(code)


def settings():
    from tutti.platform.config import ConfigError, get_settings

    try:
        return get_settings()
    except ConfigError as error:
        fail(f"configuration error: {error}")


def database(apply_migrations: bool = True):
    """The configured database, migrated; configuration and connection problems end in one line."""
    from sqlalchemy.exc import OperationalError

    from tutti.platform import db, migrate

    s = settings()
    url = s.resolved_database_url
    if url.startswith("sqlite"):
        s.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if apply_migrations:
            migrate.upgrade(url)
        return db.configure(url)
    except OperationalError as error:
        fail(f"cannot reach the database at {url.split('@')[-1]}: {str(error.orig).strip().splitlines()[0]}")
    except ModuleNotFoundError as error:
        fail(f"the database driver is missing ({error.name}); install tutti[postgres]")


def run_service(func):
    """Run a service call, turning Tutti's errors into a one-line message."""
    from tutti.platform.errors import TuttiError

    try:
        return func()
    except TuttiError as error:
        fail(error.message, 1)


def _setup_logs() -> None:
    from tutti.platform import logs

    s = settings()
    logs.setup(s.log_level, s.log_json)


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    database()
    typer.echo("database is up to date")


@app.command()
def serve(host: str = typer.Option(None, help="default: TUTTI_HOST"), port: int = typer.Option(None, help="default: TUTTI_PORT")) -> None:
    """Start the web server (and, when the queue is embedded, the job worker inside it)."""
    import uvicorn

    from tutti.web.app import create_app

    s = settings()
    _setup_logs()
    database()
    uvicorn.run(create_app(s), host=host or s.host, port=port or s.port, log_config=None, access_log=False)


@app.command()
def worker(threads: int = typer.Option(None, help="default: TUTTI_WORKER_THREADS")) -> None:
    """Run background jobs and the scheduler in this process (for a Redis queue)."""
    from tutti.platform import jobs

    s = settings()
    _setup_logs()
    database()
    if s.embedded_queue:
        typer.echo("tutti: note: the queue is embedded; `tutti serve` already runs a worker", err=True)
    jobs.run_worker(threads or s.worker_threads)


@workspace_app.command("create")
def workspace_create(name: str, timezone: str = "Asia/Taipei", locale: str = "zh-TW", currency: str = "TWD") -> None:
    """Create a workspace; prints its id, an admin API key and the tracking write key as JSON."""
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor

    db = database()

    def create():
        with db.session() as s:
            workspace = workspaces.create_workspace(s, name=name, timezone=timezone, locale=locale, currency=currency)
            key = workspaces.create_api_key(s, workspace_id=workspace.id, name="created by tutti workspace create", role="admin", actor=Actor.cli())
            return {"workspace_id": workspace.id, "name": workspace.name, "api_key": key.key, "write_key": workspace.write_key}

    typer.echo(json.dumps(run_service(create), ensure_ascii=False))


@user_app.command("create")
def user_create(
    email: str,
    workspace: int = typer.Option(..., help="workspace id"),
    role: str = typer.Option("owner", help="owner, admin, marketer, agent or analyst"),
    name: str = "",
    password: str = typer.Option(None, help="default: TUTTI_PASSWORD, else asked for"),
) -> None:
    """Create a user (or give an existing one a role) in a workspace."""
    from sqlalchemy import select

    from tutti.platform import workspaces
    from tutti.platform.audit import Actor
    from tutti.platform.models import User

    db = database()
    password = password or os.environ.get("TUTTI_PASSWORD") or getpass.getpass("password: ")

    def create():
        with db.session() as s:
            workspaces.get_workspace(s, workspace)
            user = s.scalar(select(User).where(User.email == workspaces.normalise_email(email)))
            if user is None:
                user = workspaces.create_user(s, email=email, password=password, name=name)
            workspaces.add_member(s, workspace_id=workspace, user_id=user.id, role=role, actor=Actor.cli())
            return {"user_id": user.id, "email": user.email, "workspace_id": workspace, "role": role}

    typer.echo(json.dumps(run_service(create)))


@app.command("import")
def import_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    workspace: int = typer.Option(..., help="workspace id"),
    kind: str = typer.Option("members", help="members or orders"),
    mapping: str = typer.Option(None, help='JSON {"file column": "field"}; default: guessed from the headers'),
    dry_run: bool = typer.Option(False, "--dry-run", help="check every row and report, change nothing"),
) -> None:
    """Import members or orders from a CSV or XLSX file, with a progress bar."""
    from tutti.audience import imports

    db = database()
    try:
        chosen = json.loads(mapping) if mapping else None
    except json.JSONDecodeError as error:
        fail(f"--mapping is not JSON: {error}")
    result = run_service(lambda: imports.run_from_cli(db, workspace_id=workspace, kind=kind, path=path, mapping=chosen, dry_run=dry_run))
    typer.echo(json.dumps(result, ensure_ascii=False, default=str))
    if result.get("error_rows"):
        raise typer.Exit(1 if not result.get("ok_rows") else 0)


@app.command()
def export(contact: int = typer.Option(..., help="contact id"), workspace: int = typer.Option(..., help="workspace id")) -> None:
    """Export everything known about one contact as JSON (privacy: right of access)."""
    from tutti.audience import privacy
    from tutti.platform.audit import Actor

    db = database()

    def run():
        with db.session() as s:
            return privacy.export_contact(s, workspace_id=workspace, contact_id=contact, actor=Actor.cli())

    typer.echo(json.dumps(run_service(run), ensure_ascii=False, default=str, indent=2))


@app.command()
def erase(
    contact: int = typer.Option(..., help="contact id"),
    workspace: int = typer.Option(..., help="workspace id"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Erase a contact: identities and personal data removed, anonymous aggregates kept (right to erasure)."""
    from tutti.audience import privacy
    from tutti.platform.audit import Actor

    if not yes and not typer.confirm(f"Erase contact {contact} for good?"):
        raise typer.Exit(1)
    db = database()

    def run():
        with db.session() as s:
            return privacy.erase_contact(s, workspace_id=workspace, contact_id=contact, actor=Actor.cli())

    typer.echo(json.dumps(run_service(run), default=str))


@app.command()
def demo(
    contacts: int = typer.Option(20_000, min=100, help="number of contacts to generate (about 90% members, 10% anonymous web visitors)"),
    seed: int = typer.Option(42, help="random seed: the same seed builds the same brand"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="start the server when the brand is built"),
    reset: bool = typer.Option(False, "--reset", help="delete the existing demo brand and build it again (needed to change --contacts or --seed)"),
) -> None:
    """Build (idempotently) the demo brand, a Taiwanese e-commerce shop, then start the server."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tutti.audience import demo as demo_brand

    s = settings()
    db = database()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
        steps: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in steps:
                steps[step] = bar.add_task(step, total=total)
            bar.update(steps[step], completed=done, total=total)

        info = run_service(lambda: demo_brand.build(db, contacts=contacts, seed=seed, reset=reset, progress=progress))
    typer.echo(f"\nTutti demo brand '{info.workspace_name}' is ready.")
    typer.echo(f"  open   {s.public_url}/login")
    typer.echo(f"  e-mail {info.email}")
    typer.echo(f"  pass   {info.password}\n")
    if serve_after:
        from tutti.channels import demo as channels_demo

        line = channels_demo.demo_line_channel(db, info.workspace_id)
        emulator = channels_demo.start_emulator(tutti_url=s.public_url, channel_id=line.id if line else None, data_dir=s.data_dir)
        if emulator:
            typer.echo(f"  LINE emulator (the customers' phones) {emulator}/_emulator/phone\n")
        serve(host=None, port=None)


@app.command("line-emulator")
def line_emulator(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001),
    access_token: str = typer.Option("emulator-channel-access-token", help="accepted channel access token(s), comma-separated"),
    channel_secret: str = typer.Option("emulator-channel-secret", help="signs the webhooks it sends"),
    webhook_url: str = typer.Option(None, help="where the phone page sends the customer's messages, e.g. http://127.0.0.1:8000/webhooks/line/1"),
    rate_push: float = typer.Option(2000.0, help="push requests per second (LINE: 2,000)"),
    rate_multicast: float = typer.Option(200.0, help="multicast requests per second (LINE: 200)"),
    rate_reply: float = typer.Option(2000.0, help="reply requests per second"),
    reply_ttl: float = typer.Option(60.0, help="seconds a reply token stays valid"),
    allow_http_urls: bool = typer.Option(False, help="accept http:// image URLs (LINE demands https)"),
    store: str = typer.Option(None, help="append what it receives to this JSONL file (reloaded on start)"),
) -> None:
    """Run the LINE Messaging API emulator (LINE's wire format and limits; the customer's phone at /_emulator/phone)."""
    from tutti.channels import line_emulator as emulator

    config = emulator.Config(
        access_tokens=tuple(t.strip() for t in access_token.split(",") if t.strip()), channel_secret=channel_secret, webhook_url=webhook_url,
        rates={"push": rate_push, "multicast": rate_multicast, "reply": rate_reply, "other": 2000.0},
        reply_ttl=reply_ttl, require_https=not allow_http_urls,
    )
    typer.echo(f"LINE emulator on http://{host}:{port}  (phone: http://{host}:{port}/_emulator/phone)")
    emulator.serve(host=host, port=port, config=config, store=store)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
