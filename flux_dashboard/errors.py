"""One exception tree for everything the data layer can report.

    FluxError                      base; ``str(err)`` is a plain sentence for the user
    ├── ApiError                   the API answered with an error status
    │   ├── AuthenticationError    401: key missing, wrong or revoked
    │   ├── ForbiddenError         403: the key may not read this sensor
    │   ├── NotFoundError          404: unknown sensor or path
    │   ├── InvalidRequestError    400/422: a parameter the API refused (carries the field errors)
    │   ├── RateLimitedError       429: rate limit or monthly quota (carries ``retry_after``)
    │   └── ServerError            5xx after every retry
    ├── ApiConnectionError         the API could not be reached (DNS, refused, TLS)
    │   └── ApiTimeoutError        it was reached but did not answer in time
    ├── SchemaError                a response or a row did not have the documented shape
    ├── IncompleteDataError        some hours could not be loaded completely (carries them)
    │   ├── BudgetExceededError    a request budget or the quota stopped the load
    │   └── LoadCancelledError     the user cancelled the load (what completed is cached)
    ├── ConfigError                a setting is invalid
    ├── AccessDeniedError          the signed-in user may not see this (policy, not the API)
    ├── MemoryLimitError           a window larger than this server keeps in memory
    ├── AuditUnavailableError      hosted: an action that must be audited, and the audit
    │                              trail cannot be written (refused)
    ├── DatabaseUnavailableError   the findings database cannot be reached or upgraded
    │                              (names host and port, never the password)
    └── TriageConflictError        someone else changed a finding since it was loaded

Messages say what to do next. None of them ever contains the API key: the
client builds them from status codes, parameters it chose and response bodies,
and ``redact`` scrubs the key out of anything foreign as a last line of defence.
"""

from __future__ import annotations

from datetime import datetime


class FluxError(Exception):
    """Base class: ``str(err)`` is a plain message that says what to do."""


class ApiError(FluxError):
    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:500]


class AuthenticationError(ApiError):
    pass


class ForbiddenError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class InvalidRequestError(ApiError):
    def __init__(self, message: str, *, status: int | None = None, body: str = "",
                 field_errors: list[dict] | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.field_errors = field_errors or []


class RateLimitedError(ApiError):
    def __init__(self, message: str, *, status: int | None = 429, body: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class ServerError(ApiError):
    pass


class ApiConnectionError(FluxError):
    pass


class ApiTimeoutError(ApiConnectionError):
    pass


class SchemaError(FluxError):
    def __init__(self, message: str, *, column: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


class IncompleteDataError(FluxError):
    """Raised when some hours of a range could not be loaded completely.

    ``hours`` lists the UTC start of every incomplete hour; ``partial`` holds
    the rows that were loaded completely (the caller may show them, flagged).
    """

    def __init__(self, message: str, *, hours: list[datetime], partial=None,
                 cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.hours = hours
        self.partial = partial
        self.cause = cause


class ConfigError(FluxError):
    pass


class AccessDeniedError(FluxError):
    """Refused by the access policy, before any request to the API."""


class MemoryLimitError(FluxError):
    """A window too large for the memory this server keeps for one range; nothing read."""


class AuditUnavailableError(FluxError):
    """The audit trail cannot be written, and the action must be audited: refused."""


class DatabaseUnavailableError(FluxError):
    pass


class TriageConflictError(FluxError):
    """Optimistic concurrency: ``who`` changed ``key`` at ``at`` (its state is newer)."""

    def __init__(self, message: str, *, key: str = "", who: str = "",
                 at: datetime | None = None) -> None:
        super().__init__(message)
        self.key, self.who, self.at = key, who, at


class BudgetExceededError(IncompleteDataError):
    """The load's request allowance (a budget or the quota) ran out.

    Like any incomplete load it carries the missing ``hours`` and the
    ``partial`` frame (cached and completed hours), so cached data stays usable.
    """


class LoadCancelledError(IncompleteDataError):
    """A load stopped on request; the hours completed before are in the cache."""


def redact(text: str, secret: str | None) -> str:
    """Remove ``secret`` from ``text`` (used on anything we did not write ourselves)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return text
