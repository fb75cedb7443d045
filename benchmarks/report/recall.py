"""The retrieval-quality section: LoCoMo evidence recall and MADial-Bench memory recall."""

from __future__ import annotations

from benchmarks.report.markdown import by_name, provenance, table
from benchmarks.report.schema import (
    Anchor25,
    Locomo,
    LocomoPart,
    Madial,
    RecallAnchors,
    RecallDoc,
)


def recall_section(doc: RecallDoc) -> list[str]:
    """How well ``retrieve`` finds the evidence of LoCoMo and MADial-Bench questions."""
    res = doc["results"]
    out = ["## Retrieval quality", "", *provenance(doc), ""]
    out += [
        "Memories are loaded straight into the store (the way raw mode builds them: "
        "`memlane.buffer.raw.raw_memories`, each turn embedded with the previous turn of its "
        "session (`raw_passages`) in batches, `upsert`), not through "
        "Redis and Celery: this measures retrieval, not ingestion. Questions go through "
        f"`MemoryClient.retrieve` (backend: {res['backend']}).",
        "",
    ]
    if "locomo" in res:
        out += locomo_lines(res["locomo"], res["anchors"]["locomo_dragon"], doc["params"]["top_k"])
    if "madial" in res:
        out += madial_lines(res["madial"], res["anchors"])
    return out


def locomo_lines(loc: Locomo, dragon: Anchor25, top_k: int) -> list[str]:
    """LoCoMo: defaults per category, the ablation, and the best swept settings."""
    out = [
        "### LoCoMo evidence recall (dialog turns as units, raw mode)",
        "",
        f"Conversations {', '.join(loc['conversations'])}: {loc['load']['memories']} "
        f"turns (content `Speaker: text`), questions of categories 1-4, top-"
        f"{top_k} with `now` = the last session's date. "
        "Recall@k = share of a question's evidence turns among the top k.",
        "",
    ]
    out += ["Defaults (fused + time parsing), per category:", ""]
    out += table(
        ["category", "questions", "R@1", "R@5", "R@10", "R@25"], locomo_categories(loc, dragon)
    )
    rows = [
        [
            r["name"],
            f"`{r['overrides']}`" if r["overrides"] else "defaults",
            r["overall"]["r@5"],
            r["overall"]["r@10"],
            r["overall"]["r@25"],
            r["latency"]["p50_ms"],
        ]
        for r in loc["ablation"]
    ]
    out += ["Ablation (overall, categories 1-4):", ""]
    out += table(["variant", "retrieval overrides", "R@5", "R@10", "R@25", "retrieve p50 ms"], rows)
    if loc.get("parts"):
        out += [
            "What each part of the defaults buys (cumulative steps, `benchmarks/ablation.py`; "
            "every step with today's BM25 tokens):",
            "",
        ]
        parts = [
            [
                p["name"],
                p["overall"]["r@5"],
                p["overall"]["r@10"],
                p["overall"]["r@25"],
                category_r10(p, "multi-hop"),
                category_r10(p, "single-hop"),
            ]
            for p in loc.get("parts") or []
        ]
        out += table(["step", "R@5", "R@10", "R@25", "multi-hop R@10", "single-hop R@10"], parts)
    if loc.get("sweep"):
        best = [
            [f"`{r['settings']}`", r["r@5"], r["r@10"], r["r@25"]]
            for r in (loc.get("sweep") or [])[:6]
        ]
        out += ["Best settings of the sweep (sorted by R@10):", ""]
        out += table(["retrieval overrides", "R@5", "R@10", "R@25"], best)
    return [*out, "![LoCoMo recall@k](img/recall_locomo.png)", ""]


def category_r10(part: LocomoPart, category: str) -> object:
    """A step's R@10 on one question category ("" when the category is absent)."""
    found = part["per_category"].get(category)
    return found["r@10"] if found is not None else ""


def locomo_categories(loc: Locomo, dragon: Anchor25) -> list[list[object]]:
    """Rows per question category of the default variant, its overall row, and the anchor."""
    default = by_name(loc["ablation"], "fused + time")
    rows: list[list[object]] = [
        [cat, v["n"], v["r@1"], v["r@5"], v["r@10"], v["r@25"]]
        for cat, v in default["per_category"].items()
    ]
    o = default["overall"]
    rows.append(
        ["**overall**", o["n"], o["r@1"], f"**{o['r@5']}**", f"**{o['r@10']}**", f"**{o['r@25']}**"]
    )
    rows.append(
        ["DRAGON (LoCoMo paper, anchor)", "", "", dragon["r@5"], dragon["r@10"], dragon["r@25"]]
    )
    return rows


def madial_lines(mad: Madial, anchors: RecallAnchors) -> list[str]:
    """MADial-Bench: which query text to use, the ablation next to the anchors, the sweep."""
    out = [
        "### MADial-Bench zh memory recall",
        "",
        f"{mad['dialogues']} dialogues, {mad['memories']} event memories (content = "
        "event, recorded_at = event_time = its date, imported with "
        "`memlane.importer.import_memories`). Recall@k = |top-k ∩ relevant-id| / "
        "|relevant-id|, as the benchmark's own scorer computes it. `now` = the day "
        "after the user's latest event.",
        "",
    ]
    queries = [[r["name"], r["r@1"], r["r@5"], r["r@10"], r["r@20"]] for r in mad["query_variants"]]
    out += ["Which text of the dialogue to query with (defaults):", ""]
    out += table(["query", "R@1", "R@5", "R@10", "R@20"], queries)
    out += [f"Chosen (best R@10): **{mad['chosen_query']}**.", ""]
    rows: list[list[object]] = [[r["name"], r["r@5"], r["r@10"]] for r in mad["ablation"]]
    for label, an in (("bge_m3", anchors["madial_bge_m3"]), ("openai", anchors["madial_openai"])):
        rows.append([f"{label} (anchor)", an["r@5"], an["r@10"]])
    out += ["Ablation with the chosen query:", ""]
    out += table(["variant", "R@5", "R@10"], rows)
    if mad.get("parts"):
        parts = [[p["name"], p["r@5"], p["r@10"]] for p in mad.get("parts") or []]
        out += ["What the fusion rule buys (chosen query, `benchmarks/ablation.py`):", ""]
        out += table(["step", "R@5", "R@10"], parts)
    if mad.get("sweep"):
        best = [[f"`{r['settings']}`", r["r@5"], r["r@10"]] for r in (mad.get("sweep") or [])[:6]]
        out += ["Best settings of the sweep (sorted by R@10):", ""]
        out += table(["retrieval overrides", "R@5", "R@10"], best)
    return [*out, "![MADial recall@k](img/recall_madial.png)", ""]
