"""The one error hierarchy of memlane.

Every error memlane raises on purpose derives from :class:`MemlaneError`::

    MemlaneError
    ├── ConfigError            bad settings file or environment override
    ├── InvalidInput           bad caller input; ``.field`` names the offending field
    ├── NotFound               no such memory for this user (another user's looks the same)
    ├── StoreError             the memory store refused or failed an operation
    ├── BufferError_           the Redis turn buffer failed an operation
    ├── LLMError               a model endpoint (chat, embeddings, rerank) failed
    │   ├── LLMRateLimited     429 from the provider (also Retryable)
    │   └── LLMBadOutput       output that fails parsing or schema validation
    ├── LeaseLost              another worker holds (or took over) a user's lease
    │   └── UserForgotten      the user was forgotten after the lease was granted
    ├── ServiceError           an embedded service could not be started or reached
    └── Retryable              marker base: a transient fault; retry with backoff
        ├── StoreUnavailable   (also StoreError) the store is unreachable
        ├── BufferUnavailable  (also BufferError_) Redis is unreachable
        ├── LLMUnavailable     (also LLMError) timeout, connection error or 5xx
        ├── LLMRateLimited
        └── UserBusy           a worker kept the user's lease past an edit's wait

Callers that only care whether to retry test ``isinstance(err, Retryable)``.
"""

from __future__ import annotations


class MemlaneError(Exception):
    """Root of every error memlane raises on purpose."""


class ConfigError(MemlaneError):
    """The settings file or an environment override is invalid."""


class InvalidInput(MemlaneError, ValueError):
    """Caller input was refused; nothing was written.

    ``field`` is the dotted path of the offending field, e.g. ``turns[2].content``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(MemlaneError, LookupError):
    """No such memory for this user. A memory of another user raises exactly the same."""

    def __init__(self, field: str, ident: str) -> None:
        super().__init__(f"{field}: no memory {ident!r} for this user")
        self.field = field
        self.ident = ident


class Retryable(MemlaneError):
    """A transient fault: the operation may succeed if retried with backoff."""


class StoreError(MemlaneError):
    """The memory store refused or failed an operation."""


class StoreUnavailable(StoreError, Retryable):
    """The memory store could not be reached."""


class BufferError_(MemlaneError):
    """The Redis turn buffer failed an operation."""


class BufferUnavailable(BufferError_, Retryable):
    """Redis could not be reached."""


class LLMError(MemlaneError):
    """A model endpoint (chat, embeddings or rerank) failed."""


class LLMUnavailable(LLMError, Retryable):
    """The model endpoint timed out, refused the connection or answered 5xx."""


class LLMRateLimited(LLMError, Retryable):
    """The model endpoint answered 429."""


class LLMBadOutput(LLMError):
    """The model's output failed parsing or schema validation."""


class LeaseLost(MemlaneError):
    """Another worker holds, or took over, the per-user lease."""


class UserForgotten(LeaseLost):
    """The user was forgotten after this lease was granted: its work must not be written."""


class ServiceError(MemlaneError):
    """An embedded service (Redis, the worker tree) could not be started or reached."""


class UserBusy(Retryable):
    """A worker held the user's lease for longer than an edit or delete may wait; retry."""
