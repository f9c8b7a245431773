"""The one error hierarchy. Each error knows its status, code and client-safe message;
`handlers.base` turns it into the contract's error shape in exactly one place."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    code = "internal_error"
    message = "Something went wrong on our side."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request is malformed."


class ValidationFailed(BadRequest):
    code, message = "validation_failed", "Some fields are invalid."


class Unauthorized(ApiError):
    status, code, message = 401, "not_authenticated", "Sign in to continue."


class PaymentRequired(ApiError):
    status, code, message = 402, "subscription_required", "A subscription is required."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Not found."


class MethodNotAllowed(ApiError):
    status, code, message = 405, "method_not_allowed", "This method is not allowed here."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "This conflicts with the current state."


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "unsupported_media_type", "Send JSON (application/json)."


class Unprocessable(ApiError):
    status, code, message = 422, "unprocessable", "The request cannot be processed."


class RateLimited(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests; slow down."

    def __init__(self, retry_after: int, message: str | None = None, *, code: str | None = None):
        retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            code=code,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(ApiError):
    status, code, message = 503, "service_unavailable", "A dependency is unavailable."


_BY_STATUS = {c.status: c for c in ApiError.__subclasses__() if c is not RateLimited}


def from_status(status: int, message: str | None = None) -> ApiError:
    """The error for a bare status code raised by the framework (404, 405, XSRF 403...)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = ApiError(message or "Request failed.", code="http_error")
        err.status = status
        return err
    return cls(message)
