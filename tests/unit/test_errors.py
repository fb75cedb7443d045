"""The error tree: Redis failures by their name, the old names as aliases, no RuntimeError."""

from __future__ import annotations

import ast
from pathlib import Path

from memlane import errors
from memlane.errors import (
    ConfigError,
    LLMNotConfigured,
    MemlaneError,
    RedisError_,
    RedisUnavailable,
    Retryable,
)

ROOT = Path(__file__).resolve().parents[2]


def test_redis_unavailable_is_retryable_and_keeps_its_old_names() -> None:
    """RedisUnavailable is a Retryable RedisError_; BufferUnavailable/BufferError_ are aliases."""
    assert issubclass(RedisUnavailable, RedisError_)
    assert issubclass(RedisUnavailable, Retryable)
    assert errors.BufferUnavailable is RedisUnavailable
    assert errors.BufferError_ is RedisError_


def test_raw_mode_refusal_is_a_config_error() -> None:
    """A step that needs a chat model in raw mode raises a member of the tree."""
    assert issubclass(LLMNotConfigured, ConfigError)
    assert issubclass(LLMNotConfigured, MemlaneError)


def test_every_class_is_drawn_in_the_tree() -> None:
    """The docstring's tree names every error class errors.py defines."""
    tree = ast.parse((ROOT / "memlane" / "errors.py").read_text(encoding="utf-8"))
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    doc = errors.__doc__ or ""
    assert classes and [c for c in classes if c not in doc] == []


def test_no_runtime_error_is_raised_in_the_product() -> None:
    """Product code raises members of the tree, never a bare RuntimeError."""
    offenders = []
    for package in ("memlane", "pipelines", "tasks", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Raise) and "RuntimeError" in ast.unparse(node):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
