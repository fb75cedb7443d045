"""Settings: one YAML file plus ``MEMLANE_*`` environment overrides, validated once.

``load_settings`` is the only entry point. It reads the file (if any), applies environment
overrides (``MEMLANE_STORE__BACKEND=elasticsearch`` sets ``store.backend``), and validates the
result into a frozen :class:`Settings`. Secrets (API keys, passwords) are accepted only from the
environment (taken verbatim, never parsed as YAML); a secret found in the YAML file, including a
password inside a URL, is refused. The timezone defaults to the machine's local IANA zone.
Nothing here runs at import time. The sections of the settings (``RedisSettings``,
``RetrievalSettings``, ...) are in :mod:`memlane.config_sections`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator

from memlane.config_sections import (
    BatchingSettings,
    EmbeddingSettings,
    LimitSettings,
    LLMSettings,
    LogSettings,
    MaintenanceSettings,
    MetricsSettings,
    RedisSettings,
    ReflectionSettings,
    RerankSettings,
    RetrievalSettings,
    Section,
    ServiceSettings,
    StoreSettings,
    TracingSettings,
    WorkerSettings,
)
from memlane.errors import ConfigError
from memlane.timing import Timing, check, derive

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


class Settings(Section):
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
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
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

    @model_validator(mode="after")
    def _consistent_limits(self) -> Settings:
        check(self.timing, self.llm.configured, self.worker.visibility_timeout_s)
        return self

    @property
    def timing(self) -> Timing:
        """The effective LLM timeout, task time limits and queue lease (:mod:`memlane.timing`)."""
        return derive(self.llm, self.worker, self.batching, self.reflection)

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


# Settings that were removed, with what replaced them: an old config file gets told why.
REMOVED = {
    "retrieval.rrf_k": "removed: fusion is equal-weight z-scores of cosine and BM25 "
    "now (retrieval.knn_weight / retrieval.bm25_weight); delete the line",
}


def _describe(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        lines.append(f"{where}: {REMOVED.get(where, item['msg'])}")
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
