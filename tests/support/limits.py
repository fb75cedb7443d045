"""Turns at the documented input limits: what ``add_turns`` must accept and a store must keep."""

from __future__ import annotations

import json
from typing import Any

from memlane.config_sections import LimitSettings

ZH = "我的爱好是弹吉他，周末常常和朋友一起去公园练习。"
EN = "I play the guitar on weekends and often practice with friends in the park. "


def encoded_size(metadata: dict[str, Any]) -> int:
    """Metadata size as validation measures it: JSON, UTF-8."""
    return len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))


def full_metadata(
    limits: LimitSettings, keys: int | None = None, fill: str = "x"
) -> dict[str, Any]:
    """``keys`` (default: the maximum) string values padded to exactly ``max_metadata_bytes``.

    ``fill`` is one character; a multi-byte one (``"字"``) pads with what fits, then ASCII.
    """
    count = limits.max_metadata_keys if keys is None else keys
    meta: dict[str, Any] = {f"k{i:02d}": "" for i in range(count)}
    room = limits.max_metadata_bytes - encoded_size(meta)
    assert room >= 0, "the keys alone are over the byte limit"
    width = len(fill.encode("utf-8"))
    names = list(meta)
    i = 0
    while room > 0:
        char = fill if room >= width else "x"
        meta[names[i % count]] += char
        room -= len(char.encode("utf-8"))
        i += 1
    assert encoded_size(meta) == limits.max_metadata_bytes
    return meta


def text_of(length: int, base: str) -> str:
    """``base`` repeated to exactly ``length`` characters."""
    return (base * (length // len(base) + 1))[:length]


def limit_turns(limits: LimitSettings) -> dict[str, dict[str, Any]]:
    """One turn per documented limit (and per limit combined with the others), by case name."""
    name = text_of(limits.max_name_chars, "名字")
    return {
        "max_keys": {"role": "assistant", "content": "k", "metadata": full_metadata(limits)},
        "max_bytes_one_key": {
            "role": "user",
            "content": "b",
            "metadata": full_metadata(limits, keys=1, fill="字"),
        },
        "max_zh_content_max_name": {
            "role": "user",
            "name": name,
            "content": text_of(limits.max_content_chars, ZH),
        },
        "max_en_content_max_name": {
            "role": "assistant",
            "name": text_of(limits.max_name_chars, "Ada "),
            "content": text_of(limits.max_content_chars, EN),
        },
        "everything_at_once": {
            "role": "assistant",
            "name": name,
            "content": text_of(limits.max_content_chars, ZH),
            "metadata": full_metadata(limits, fill="字"),
        },
    }
