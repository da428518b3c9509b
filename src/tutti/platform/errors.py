"""Errors the services raise; the web layer turns each into a JSON answer that names what is wrong."""

from __future__ import annotations


class TuttiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: list | dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def as_dict(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(TuttiError):
    status = 422
    code = "invalid"


class NotFound(TuttiError):
    status = 404
    code = "not_found"


class Conflict(TuttiError):
    status = 409
    code = "conflict"


class Unauthorized(TuttiError):
    status = 401
    code = "unauthorized"


class Forbidden(TuttiError):
    status = 403
    code = "forbidden"


class TooLarge(TuttiError):
    status = 400
    code = "too_large"


class RateLimited(TuttiError):
    status = 429
    code = "rate_limited"
