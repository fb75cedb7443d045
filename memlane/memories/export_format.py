"""The export format (``docs/export-format.md``), pure: header and memory lines, both ways.

Every line is one JSON object. The first is the header (``"type": "header"``); each following
one is a memory (``"type": "memory"``) with every field the store keeps, in the codec's
spelling (:func:`memlane.store.codec.memory_to_doc`), the embedding only when asked for.
Parsing validates everything and names the offending line and field: ``lines[3].content``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from memlane.config_sections import LimitSettings
from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryKind, MemoryStatus, SupersedeReason, TimeGranularity
from memlane.store.codec import DATE_FIELDS, memory_from_doc, memory_to_doc
from memlane.validation import validate_memory

FORMAT = "memlane-export"
VERSION = 1
COUNTED = tuple(s.value for s in MemoryStatus)
_STRINGS = ("subject", "superseded_by", "session_id", "batch_id", "language")
_LISTS = ("keywords", "source_turn_ids")
MEMORY_FIELDS = frozenset(
    {"type", "id", "user_id", "kind", "content", "status", "reason", "importance", "metadata"}
    | {"time_granularity", "merges", "embedding", *_STRINGS, *_LISTS, *DATE_FIELDS}
)
HEADER_FIELDS = frozenset(
    {"type", "format", "version", "user_id", "exported_at", "counts", "embeddings"}
    | {"embedding_dims"}
)


@dataclass(frozen=True, slots=True)
class Header:
    """What the first line of an export says."""

    user_id: str
    memories: int
    embeddings: bool


def header_line(
    user_id: str, exported_at: datetime, counts: dict[str, int], embeddings: bool, dims: int
) -> str:
    """The header: format, version, user, time, counts per status and in all, embeddings."""
    per_status = {status: int(counts.get(status, 0)) for status in COUNTED}
    header = {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "user_id": user_id,
        "exported_at": exported_at.isoformat(),
        "counts": {"memories": sum(per_status.values()), **per_status},
        "embeddings": embeddings,
        "embedding_dims": dims if embeddings else None,
    }
    return json.dumps(header, ensure_ascii=False) + "\n"


def memory_line(memory: Memory, embeddings: bool) -> str:
    """One memory: every field; ``embedding`` only with ``embeddings``."""
    doc = {"type": "memory", **memory_to_doc(memory, with_embedding=embeddings)}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False) + "\n"


def parse_json(line: object, where: str) -> dict[str, Any]:
    """One line as a JSON object (str or UTF-8 bytes)."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(where, "is not UTF-8") from e
    if not isinstance(line, str):
        raise InvalidInput(where, "must be a string")
    try:
        value = json.loads(line)
    except ValueError as e:
        raise InvalidInput(where, f"is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise InvalidInput(where, "must be a JSON object")
    return value


def _unknown(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise InvalidInput(f"{where}.{extra[0]}", "unknown field")


def parse_header(obj: dict[str, Any], dims: int, where: str = "lines[0]") -> Header:
    """The header line: our format, a version we read, counts, and matching vector dims."""
    if obj.get("type") != "header" or obj.get("format") != FORMAT:
        raise InvalidInput(f"{where}.format", f"the first line must be a {FORMAT} header")
    _unknown(obj, HEADER_FIELDS, where)
    version = obj.get("version")
    if version != VERSION:
        raise InvalidInput(f"{where}.version", f"version {version!r} is not {VERSION}")
    user_id = obj.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput(f"{where}.user_id", "must be the exported user's id")
    counts = obj.get("counts")
    total = counts.get("memories") if isinstance(counts, dict) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise InvalidInput(f"{where}.counts", "must give the number of memories")
    embeddings = obj.get("embeddings")
    if not isinstance(embeddings, bool):
        raise InvalidInput(f"{where}.embeddings", "must be true or false")
    if embeddings and obj.get("embedding_dims") != dims:
        raise InvalidInput(
            f"{where}.embedding_dims", f"has {obj.get('embedding_dims')!r} dims, need {dims}"
        )
    return Header(user_id, total, embeddings)


def _check_types(obj: dict[str, Any], where: str) -> None:
    """Each field's JSON type, so the codec never sees a surprise."""
    for name in ("id", "content", "recorded_at"):
        if not isinstance(obj.get(name), str):
            raise InvalidInput(f"{where}.{name}", "must be a string")
    for name in (*_STRINGS, *DATE_FIELDS):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise InvalidInput(f"{where}.{name}", "must be a string or null")
    for name in _LISTS:
        value = obj.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{where}.{name}", "must be a list of strings")
    importance = obj.get("importance", 0.5)
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        raise InvalidInput(f"{where}.importance", "must be a number")
    if not isinstance(obj.get("metadata", {}), dict):
        raise InvalidInput(f"{where}.metadata", "must be an object")
    embedding = obj.get("embedding")
    if embedding is not None and not _finite_vector(embedding):
        raise InvalidInput(f"{where}.embedding", "must be a list of finite numbers or null")
    merges = obj.get("merges", [])
    if not isinstance(merges, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("merged_at"), str)
        and (r.get("batch_id") is None or isinstance(r.get("batch_id"), str))
        and isinstance(r.get("source_turn_ids", []), list)
        and all(isinstance(t, str) for t in r.get("source_turn_ids", []))
        for r in merges
    ):
        raise InvalidInput(f"{where}.merges", "must be a list of merge records")


def _finite_vector(value: object) -> bool:
    """A flat list of finite numbers (checked in numpy: vectors are most of an export)."""
    if not isinstance(value, list):
        return False
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        return False
    return array.ndim == 1 and array.dtype.kind in "iuf" and bool(np.isfinite(array).all())


def _check_enums(obj: dict[str, Any], where: str) -> None:
    for name, enum, optional in (
        ("kind", MemoryKind, False),
        ("status", MemoryStatus, False),
        ("reason", SupersedeReason, True),
        ("time_granularity", TimeGranularity, True),
    ):
        value = obj.get(name)
        if value is None and optional:
            continue
        if not isinstance(value, str) or value not in {e.value for e in enum}:
            raise InvalidInput(f"{where}.{name}", f"unknown {name} {value!r}")


def memory_of_line(obj: dict[str, Any], user_id: str) -> Memory:
    """A memory line already checked by :func:`parse_memory`, as a memory of ``user_id``."""
    doc = {k: v for k, v in obj.items() if k != "type"}
    doc["user_id"] = user_id
    return memory_from_doc(doc)


def parse_memory(
    obj: dict[str, Any],
    header: Header,
    user_id: str,
    dims: int,
    limits: LimitSettings,
    where: str,
) -> Memory:
    """One memory line as a memory of ``user_id`` (the user imported into)."""
    if obj.get("type") != "memory":
        raise InvalidInput(f"{where}.type", "must be 'memory'")
    _unknown(obj, MEMORY_FIELDS, where)
    if obj.get("user_id") != header.user_id:
        raise InvalidInput(f"{where}.user_id", "differs from the header's user_id")
    _check_types(obj, where)
    _check_enums(obj, where)
    try:
        memory = memory_of_line(obj, user_id)
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidInput(where, f"is not a valid memory: {e}") from e
    validate_memory(memory, dims, limits, where)
    return memory
