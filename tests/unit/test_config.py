"""Settings: file + environment overrides, validation errors, secrets only from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import BaseModel

from memlane.config import Settings, env_overrides, load_settings, local_timezone
from memlane.config_sections import StoreBackend
from memlane.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "memlane.example.yaml"


def _leaf_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths = set()
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths |= _leaf_paths(ann, f"{prefix}{name}.")
        else:
            paths.add(f"{prefix}{name}")
    return paths


def _yaml_paths(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _yaml_paths(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_defaults_need_no_file_and_no_environment() -> None:
    """With nothing configured, memlane runs on the embedded default."""
    s = load_settings(environ={})
    assert s.store.backend is StoreBackend.SQLITE
    assert s.redis.url is None and not s.llm.configured


def test_example_file_loads_and_documents_every_setting() -> None:
    """The example config is valid and names every non-secret setting."""
    loaded = load_settings(EXAMPLE, environ={})
    assert loaded == Settings()  # the example lists the defaults
    documented = _yaml_paths(yaml.safe_load(EXAMPLE.read_text()))
    secrets = {p for p in _leaf_paths(Settings) if p.rsplit(".", 1)[-1] in {"api_key", "password"}}
    assert _leaf_paths(Settings) - secrets == documented
    text = EXAMPLE.read_text()
    for secret in secrets:  # each secret is mentioned with its variable name
        assert "MEMLANE_" + secret.upper().replace(".", "__") in text


def test_environment_overrides_nested_values_with_types() -> None:
    """MEMLANE_A__B=v sets a.b, parsed as a YAML scalar."""
    env = {
        "MEMLANE_STORE__BACKEND": "elasticsearch",
        "MEMLANE_BATCHING__IDLE_S": "7.5",
        "MEMLANE_RETRIEVAL__TIME_FILTER": "true",
        "MEMLANE_TEST_ES_URL": "http://ignored",
        "OTHER": "x",
    }
    s = load_settings(environ=env)
    assert s.store.backend is StoreBackend.ELASTICSEARCH
    assert s.batching.idle_s == 7.5
    assert s.retrieval.time_filter is True


def test_environment_wins_over_file(tmp_path: Path) -> None:
    """File first, then the environment."""
    f = tmp_path / "m.yaml"
    f.write_text("batching:\n  idle_s: 1\n  max_wait_s: 9\n")
    s = load_settings(f, environ={"MEMLANE_BATCHING__IDLE_S": "4"})
    assert (s.batching.idle_s, s.batching.max_wait_s) == (4, 9)


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    """MEMLANE_CONFIG names the file when no path is given."""
    f = tmp_path / "m.yaml"
    f.write_text("timezone: UTC\n")
    assert load_settings(environ={"MEMLANE_CONFIG": str(f)}).timezone == "UTC"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MEMLANE_BATCHING__IDLE_S": "-1"}, "batching.idle_s"),
        ({"MEMLANE_STORE__BACKEND": "mysql"}, "store.backend"),
        ({"MEMLANE_TIMEZONE": "Mars/Base"}, "timezone"),
        ({"MEMLANE_STORE__NO_SUCH": "1"}, "store.no_such"),
        ({"MEMLANE_LOG__LEVEL": "LOUD"}, "log.level"),
        ({"MEMLANE_EMBEDDING__DIMS": "many"}, "embedding.dims"),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], field: str) -> None:
    """A bad value fails at start-up with the dotted field path in the message."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings(environ=env)


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    """api_key and password may only come from the environment."""
    f = tmp_path / "m.yaml"
    f.write_text("llm:\n  api_key: sk-abcdefgh12345678\n")
    with pytest.raises(ConfigError, match=r"llm\.api_key") as err:
        load_settings(f, environ={})
    assert "sk-abcdefgh" not in str(err.value)


def test_secret_from_environment_is_hidden_in_repr() -> None:
    """A key from the environment is usable but never printed."""
    s = load_settings(environ={"MEMLANE_LLM__API_KEY": "sk-secret-value-123"})
    assert s.llm.api_key is not None
    assert s.llm.api_key.get_secret_value() == "sk-secret-value-123"
    assert "sk-secret-value-123" not in repr(s) and s.llm.configured


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start-up."""
    s = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.timezone = "UTC"  # type: ignore[misc]


def test_env_overrides_reject_empty_segments() -> None:
    """A variable like MEMLANE_STORE____X is a typo, not silently ignored."""
    with pytest.raises(ConfigError):
        env_overrides({"MEMLANE_STORE____X": "1"})


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    """Unparseable or non-mapping YAML gives a ConfigError naming the file."""
    f = tmp_path / "bad.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_settings(f, environ={})
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(f, environ={})


SECRET_PATHS = ["redis.password", "store.password", "llm.api_key", "embedding.api_key"]


@pytest.mark.parametrize(
    "raw",
    [
        "pw #frag",
        "null",
        "~",
        "123456",
        "yes",
        "true",
        "0x1F",
        " padded ",
        "{a: 1}",
        "[1, 2]",
        "'q'",
    ],
)
@pytest.mark.parametrize("path", SECRET_PATHS)
def test_secrets_from_the_environment_are_taken_verbatim(raw: str, path: str) -> None:
    """A secret is the raw string: never cut at '#', never null, never a number or a bool."""
    section, name = path.split(".")
    s = load_settings(environ={f"MEMLANE_{section.upper()}__{name.upper()}": raw})
    secret = getattr(getattr(s, section), name)
    assert secret is not None and secret.get_secret_value() == raw


def test_an_empty_secret_means_unset() -> None:
    """MEMLANE_LLM__API_KEY= (e.g. ${KEY:-} in compose) leaves the key unset: raw mode."""
    s = load_settings(environ={"MEMLANE_LLM__API_KEY": "", "MEMLANE_REDIS__PASSWORD": ""})
    assert s.llm.api_key is None and s.redis.password is None and not s.llm.configured


def test_non_secret_values_keep_their_yaml_types() -> None:
    """Only secrets are raw: other variables still parse (null, numbers, booleans)."""
    tree = env_overrides(
        {"MEMLANE_REDIS__URL": "null", "MEMLANE_BATCHING__IDLE_S": "3", "MEMLANE_LLM__API_KEY": "3"}
    )
    assert tree == {"redis": {"url": None}, "batching": {"idle_s": 3}, "llm": {"api_key": "3"}}


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("redis:\n  url: redis://:hunter2@redis:6379/0\n", "redis.url"),
        ("redis:\n  url: redis://default:hunter2@redis:6379/0\n", "redis.url"),
        ("store:\n  es_url: https://elastic:hunter2@es:9200\n", "store.es_url"),
        ("llm:\n  base_url: http://u:hunter2@llm/v1\n", "llm.base_url"),
    ],
)
def test_a_password_inside_a_url_in_the_file_is_refused(
    tmp_path: Path, yaml_text: str, field: str
) -> None:
    """A URL carrying a password is a secret in the file: refused, and the password not echoed."""
    f = tmp_path / "m.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as err:
        load_settings(f, environ={})
    assert "hunter2" not in str(err.value)


def test_urls_without_a_password_in_the_file_are_fine(tmp_path: Path) -> None:
    """A user name alone, or no credentials, is not a secret."""
    f = tmp_path / "m.yaml"
    f.write_text("redis:\n  url: redis://redis:6379/0\nstore:\n  es_url: http://elastic@es:9200\n")
    assert load_settings(f, environ={}).redis.url == "redis://redis:6379/0"


def test_a_password_inside_a_url_from_the_environment_is_a_known_secret() -> None:
    """secret_values() lists keys, passwords and URL passwords (what the redactor masks)."""
    s = load_settings(
        environ={
            "MEMLANE_REDIS__URL": "redis://:p%40ss@redis:6379/0",
            "MEMLANE_STORE__PASSWORD": "es-pw",
            "MEMLANE_LLM__API_KEY": "key-1",
        }
    )
    assert set(s.secret_values()) == {"p@ss", "es-pw", "key-1"}
    assert load_settings(environ={}).secret_values() == ()


def _default_timezone_with(tz_env: str | None) -> str:
    """Settings().timezone in a fresh interpreter whose TZ is ``tz_env`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_") and k != "TZ"}
    if tz_env is not None:
        env["TZ"] = tz_env
    code = "from memlane.config import load_settings; print(load_settings(environ={}).timezone)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("tz_env", ["America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_default_timezone_is_the_machines_zone(tz_env: str) -> None:
    """With no timezone setting, the machine's local IANA zone is used (not Asia/Shanghai)."""
    assert _default_timezone_with(tz_env) == tz_env


def test_an_unreadable_machine_zone_never_fails_start_up() -> None:
    """A TZ that names no zone gives a valid zone (the system's, else UTC), not an error."""
    name = _default_timezone_with("Not/AZone")
    assert name != "Not/AZone" and ZoneInfo(name).key == name


def test_timezone_null_in_the_file_means_local_and_a_name_is_kept(tmp_path: Path) -> None:
    """`timezone: null` is the machine's zone; an explicit zone always wins."""
    f = tmp_path / "m.yaml"
    f.write_text("timezone: null\n")
    assert load_settings(f, environ={}).timezone == local_timezone()
    f.write_text("timezone: Asia/Shanghai\n")
    assert load_settings(f, environ={"MEMLANE_TIMEZONE": "Europe/Paris"}).timezone == "Europe/Paris"
    assert load_settings(f, environ={}).tz.key == "Asia/Shanghai"


def test_a_removed_setting_says_what_replaced_it(tmp_path: Path) -> None:
    """An old config that still sets retrieval.rrf_k is refused, naming the field and the fix."""
    path = tmp_path / "old.yaml"
    path.write_text("retrieval:\n  rrf_k: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"retrieval\.rrf_k: removed: fusion is") as err:
        load_settings(path, environ={})
    assert "bm25_weight" in str(err.value)
