"""`tutti kb …`: import, export, ask and calibrate — how support teams test a knowledge base before going
live, and give its confidence the questions they tested it with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

kb_app = typer.Typer(help="The knowledge base of a workspace (FAQ items and articles).", no_args_is_help=True)


def _database():
    from tutti.cli import database

    return database()


@kb_app.command("import")
def kb_import(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help=".csv, .jsonl or .md"),  # noqa: B008
    workspace: int = typer.Option(..., help="workspace id"),
    replace: bool = typer.Option(False, "--replace", help="also delete items that are not in the file"),
    embed: bool = typer.Option(
        True, "--embed/--no-embed", help="compute the vectors and fit the calibration now (else the first question embeds, and the default calibration serves until the knowledge job has fitted one)"
    ),
) -> None:
    """Import a knowledge file, all or nothing; prints what changed as JSON."""
    from tutti.cli import run_service
    from tutti.converse.knowledge import service
    from tutti.converse.knowledge.jobs import embed_and_calibrate
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor

    db = _database()

    def run():
        with db.session() as s:
            workspaces.get_workspace(s, workspace)
            summary = service.import_file(
                s,
                workspace_id=workspace,
                actor=Actor.cli(),
                filename=path.name,
                data=path.read_bytes(),
                replace=replace,
            )
        if embed:
            prepared = embed_and_calibrate(db, workspace_id=workspace)
            summary["embedded"], summary["threshold"] = prepared["embedded"], prepared["threshold"]
        return summary

    result = run_service(run)
    typer.echo(json.dumps(result, ensure_ascii=False))


@kb_app.command("calibrate")
def kb_calibrate(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,  # noqa: B008
                                help='JSONL {"question", "expected"} (expected: an item id, or null to hand off) or CSV question,expected'),
    workspace: int = typer.Option(..., help="workspace id"),
) -> None:
    """Make the file's questions the workspace's calibration questions (all or nothing), then embed them and
    refit the confidence calibration on them; prints the counts and the thresholds as JSON."""
    from tutti.cli import run_service
    from tutti.converse.knowledge import questions
    from tutti.converse.knowledge.jobs import embed_and_calibrate
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor

    db = _database()

    def run():
        with db.session() as s:
            workspaces.get_workspace(s, workspace)
            summary = questions.replace(s, workspace_id=workspace, actor=Actor.cli(), filename=path.name,
                                        data=path.read_bytes())
        prepared = embed_and_calibrate(db, workspace_id=workspace)
        return {**summary, "embedded": prepared["embedded"], "threshold": prepared["threshold"]}

    typer.echo(json.dumps(run_service(run), ensure_ascii=False))


@kb_app.command("export")
def kb_export(
    workspace: int = typer.Option(..., help="workspace id"),
    format: str = typer.Option("jsonl", "--format", help="jsonl, csv or markdown (articles only)"),
    output: Path = typer.Option(None, "--output", "-o", help="default: standard output"),  # noqa: B008
) -> None:
    """Export the knowledge base in the import formats."""
    from tutti.cli import run_service
    from tutti.converse.knowledge import service

    db = _database()

    def run():
        with db.read_session() as s:
            return service.export(s, workspace_id=workspace, format=format)

    text = run_service(run)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@kb_app.command("ask")
def kb_ask(
    workspace: int = typer.Option(..., help="workspace id"),
    offline: bool = typer.Option(False, "--offline", help="never call the LLM even when one is configured"),
) -> None:
    """Read questions from standard input (one per line, or JSONL with "question") and print one JSON line
    per question: action (answer/handoff/tool), knowledge_id, external_id, confidence, answer, reason."""
    from tutti.cli import run_service
    from tutti.converse.knowledge.ask import ask, read_questions

    db = _database()
    for row in read_questions(sys.stdin):

        def run(question=row["question"]):
            with db.session() as s:
                return ask(s, workspace_id=workspace, question=question, use_llm=not offline)

        result = run_service(run)
        extra = {k: v for k, v in row.items() if k != "question"}
        typer.echo(json.dumps({"question": row["question"], **result, **extra}, ensure_ascii=False))
