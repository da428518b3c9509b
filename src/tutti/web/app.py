"""The application: every part's routes mounted on one FastAPI app, with errors answered as JSON."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

import tutti
from tutti.platform import jobs, metrics
from tutti.platform.config import Settings, get_settings
from tutti.platform.db import configure
from tutti.platform.errors import TuttiError

log = logging.getLogger("tutti.web")
STATIC = Path(__file__).parent / "static"


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TuttiError)
    async def _tutti_error(request: Request, error: TuttiError):
        return JSONResponse(error.as_dict(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        problems = [{"field": _field_path(e["loc"]), "message": e["msg"]} for e in error.errors()]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        body = {"error": {"code": "invalid", "message": f"{first['field']}: {first['message']}", "field": first["field"], "details": problems}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        body = {"error": {"code": codes.get(error.status_code, "http_error"), "message": str(error.detail)}}
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"error": {"code": "internal", "message": "an unexpected error happened; it has been logged"}}, status_code=500)


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = configure(settings.resolved_database_url)
    embedded = settings.embedded_queue if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = None
        if embedded:
            worker = jobs.EmbeddedWorker(settings.worker_threads)
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(
        title="Tutti",
        version=tutti.__version__,
        description="REST API (Bearer API key) and Segment-compatible tracking API (write key as HTTP Basic user).",
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.middleware("http")(metrics.middleware)

    @app.get("/healthz", tags=["operations"])
    def healthz():
        checks = {}
        try:
            with database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # report, never raise: this is what monitors poll
            checks["database"] = f"error: {error.__class__.__name__}"
        try:
            jobs.ping()
            checks["queue"] = "ok"
        except Exception as error:
            checks["queue"] = f"error: {error.__class__.__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus_metrics():
        return metrics.render()

    from tutti.web.routes import mount_all

    mount_all(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
