"""Markdown pieces every section uses: tables, provenance lines, goal status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from benchmarks.report.schema import Envelope, Named

NamedRow = TypeVar("NamedRow", bound=Named)


def provenance(doc: Envelope) -> list[str]:
    """Where and how a results document was measured, as two bullet lines."""
    m = doc["machine"]
    load_avg = f", load average at start {m['loadavg']}" if m.get("loadavg") else ""
    return [
        f"- Measured {doc['date']} at commit `{doc['commit']}` on {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_gib']} GiB RAM (Python {m['python']}{load_avg}); wall time {doc['wall_s']} s.",
        f"- Command: `{doc['command']}`",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table followed by a blank line; ``None`` cells are left empty."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def by_name(rows: Sequence[NamedRow], prefix: str) -> NamedRow:
    """The ablation row whose name starts with ``prefix``."""
    return next(r for r in rows if r["name"].startswith(prefix))


def mark(met: bool) -> str:
    """A goal's status cell."""
    return "met" if met else "**missed**"
