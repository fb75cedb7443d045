"""The one error hierarchy of memlane.

Every error memlane raises on purpose derives from :class:`MemlaneError`::

    MemlaneError
    ├── ConfigError            bad settings file or environment override
    │   └── LLMNotConfigured   a step needs a chat model and none is configured (raw mode)
    ├── InvalidInput           bad caller input; ``.field`` names the offending field
    ├── NotFound               no such memory for this user (another user's looks the same)
    ├── StoreError             the memory store refused or failed an operation
    ├── RedisError_            Redis (buffer, leases, markers, counters) failed an operation
    ├── LLMError               a model endpoint (chat, embeddings, rerank) failed
    │   ├── LLMRateLimited     429 from the provider (also Retryable)
    │   └── LLMBadOutput       output that fails parsing or schema validation
    │       └── BadOutputRetry (also Retryable) not the batch's last attempt: retry it
    ├── LeaseLost              another worker holds (or took over) a user's lease
    │   └── UserForgotten      the user was forgotten after the lease was granted
    ├── ServiceError           an embedded service could not be started or reached
    ├── RequestRefused         the HTTP/MCP service refused a request before memlane saw it
    │   ├── BadRequest         the body is not UTF-8 JSON, or not a JSON object
    │   ├── Unauthorized       no API key, or an unknown or revoked one
    │   ├── PayloadTooLarge    the body is over the configured size
    │   └── RateLimited        the key's token bucket is empty (``.retry_after`` seconds)
    └── Retryable              marker base: a transient fault; retry with backoff
        ├── StoreUnavailable   (also StoreError) the store is unreachable
        ├── RedisUnavailable   (also RedisError_) Redis is unreachable
        ├── LLMUnavailable     (also LLMError) timeout, connection error or 5xx
        ├── LLMRateLimited
        └── UserBusy           a worker kept the user's lease past an edit's wait

Callers that only care whether to retry test ``isinstance(err, Retryable)``.

Old names kept as aliases (the same classes, so ``except`` clauses written for either catch
both): ``BufferUnavailable`` = :class:`RedisUnavailable` and ``BufferError_`` =
:class:`RedisError_`. They were named after the turn buffer, but every Redis adapter (leases,
attempts, markers, caches) raises them: what they mean is "Redis failed".
"""

from __future__ import annotations


class MemlaneError(Exception):
    """Root of every error memlane raises on purpose."""


class ConfigError(MemlaneError):
    """The settings file or an environment override is invalid."""


class LLMNotConfigured(ConfigError):
    """A step needs a chat model (reflection) and none is configured: raw mode."""


class InvalidInput(MemlaneError, ValueError):
    """Caller input was refused; nothing was written.

    ``field`` is the dotted path of the offending field, e.g. ``turns[2].content``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(MemlaneError, LookupError):
    """No such memory (or dead letter) for this user. Another user's raises exactly the same."""

    def __init__(self, field: str, ident: str, what: str = "memory") -> None:
        super().__init__(f"{field}: no {what} {ident!r} for this user")
        self.field = field
        self.ident = ident


class Retryable(MemlaneError):
    """A transient fault: the operation may succeed if retried with backoff."""


class StoreError(MemlaneError):
    """The memory store refused or failed an operation."""


class StoreUnavailable(StoreError, Retryable):
    """The memory store could not be reached."""


class RedisError_(MemlaneError):
    """Redis failed an operation (the turn buffer, a lease, a marker, a counter or a cache)."""


class RedisUnavailable(RedisError_, Retryable):
    """Redis could not be reached."""


# The names before issue 12, kept for callers that catch them (see the module docstring).
BufferError_ = RedisError_
BufferUnavailable = RedisUnavailable


class LLMError(MemlaneError):
    """A model endpoint (chat, embeddings or rerank) failed."""


class LLMUnavailable(LLMError, Retryable):
    """The model endpoint timed out, refused the connection or answered 5xx."""


class LLMRateLimited(LLMError, Retryable):
    """The model endpoint answered 429."""


class LLMBadOutput(LLMError):
    """The model's output failed parsing or schema validation."""


class BadOutputRetry(LLMBadOutput, Retryable):
    """Bad LLM output on an attempt that is not the batch's last: retry with backoff."""


class LeaseLost(MemlaneError):
    """Another worker holds, or took over, the per-user lease."""


class UserForgotten(LeaseLost):
    """The user was forgotten after this lease was granted: its work must not be written."""


class ServiceError(MemlaneError):
    """An embedded service (Redis, the worker tree) could not be started or reached."""


class RequestRefused(MemlaneError):
    """The service (HTTP or MCP) refused a request before it reached memlane's API.

    ``service/errors.py`` gives each subclass its HTTP status; the MCP server its tool error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestRefused):
    """The body is not UTF-8 JSON, or not a JSON object."""


class Unauthorized(RequestRefused):
    """No API key, or a key that is unknown or revoked."""


class PayloadTooLarge(RequestRefused):
    """The body is larger than the configured limit."""


class RateLimited(RequestRefused):
    """The key's token bucket is empty; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit of this API key reached; retry after {retry_after} s")
        self.retry_after = retry_after


class UserBusy(Retryable):
    """A worker held the user's lease for longer than an edit or delete may wait; retry."""
