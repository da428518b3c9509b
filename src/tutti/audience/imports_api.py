"""REST API of imports under /api/v1/imports (Bearer API key, permission imports.run). Thin: the
service does the work; every call is scoped by the key's workspace, so another workspace's import is 404."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, File, Form, UploadFile
from sqlalchemy.orm import Session

from tutti.audience import imports
from tutti.audience.filereader import MAX_FILE_BYTES
from tutti.platform.auth import ApiContext, api_context, get_db
from tutti.platform.errors import InvalidInput, TooLarge
from tutti.platform.schemas import IdPath

router = APIRouter(tags=["imports"])


@router.post("/imports", status_code=201)
def create_import(
    file: UploadFile = File(..., description="CSV, TSV, XLSX or XLS"),
    kind: str = Form("members", description="members or orders"),
    ctx: ApiContext = Depends(api_context),
    db: Session = get_db,
) -> dict:
    """Upload a file: answers with its columns, the detected format and a guessed mapping to check."""
    ctx.require("imports.run")
    content = file.file.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise TooLarge(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into smaller files", field="file")
    job = imports.create_import(db, workspace_id=ctx.workspace_id, kind=kind, filename=file.filename or "upload",
                                content=content, actor=ctx.actor)
    return imports.as_dict(job)


@router.get("/imports")
def list_imports(ctx: ApiContext = Depends(api_context), db: Session = get_db) -> dict:
    ctx.require("imports.run")
    jobs = imports.list_imports(db, workspace_id=ctx.workspace_id)
    return {"imports": [imports.as_dict(job, errors=0) for job in jobs]}


@router.get("/imports/{import_id}")
def get_import(import_id: IdPath, ctx: ApiContext = Depends(api_context), db: Session = get_db) -> dict:
    ctx.require("imports.run")
    return imports.as_dict(imports.get_import(db, workspace_id=ctx.workspace_id, import_id=import_id))


def _mapping(body: dict | None) -> dict | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    mapping = body.get("mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise InvalidInput("mapping must be an object of {column header: field}", field="mapping")
    return mapping


@router.post("/imports/{import_id}/preview")
def preview_import(
    import_id: IdPath,
    body: dict | None = Body(None, examples=[{"mapping": {"手機": "phone", "姓名": "name"}, "limit": 20}]),
    ctx: ApiContext = Depends(api_context),
    db: Session = get_db,
) -> dict:
    """Check every row with the mapping (saved on the import) without writing any contact."""
    ctx.require("imports.run")
    limit = (body or {}).get("limit", 20) if isinstance(body, dict) else 20
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidInput("limit must be a whole number", field="limit")
    return imports.preview(db, workspace_id=ctx.workspace_id, import_id=import_id, mapping=_mapping(body), limit=limit)


@router.post("/imports/{import_id}/start", status_code=202)
def start_import(
    import_id: IdPath,
    body: dict | None = Body(None, examples=[{"mapping": {"手機": "phone"}}]),
    ctx: ApiContext = Depends(api_context),
    db: Session = get_db,
) -> dict:
    """Queue the import; follow it with GET /imports/{id}."""
    ctx.require("imports.run")
    job = imports.start(db, workspace_id=ctx.workspace_id, import_id=import_id, mapping=_mapping(body), actor=ctx.actor)
    return imports.as_dict(job, errors=0)
