"""The never-hurts section: the defaults against each component, every formulation and mode."""

from __future__ import annotations

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema import NeverHurtsDoc


def never_hurts_section(doc: NeverHurtsDoc) -> list[str]:
    """R@5 / R@10 of the defaults, dense only and BM25 only, and the defaults' margins."""
    res = doc["results"]
    out = ["## Fusion never hurts", "", *provenance(doc), ""]
    out += [
        "Every MADial-Bench zh query formulation and every LoCoMo memory mode of the recall "
        "benchmarks, each on a SQLite store of its own, through `MemoryClient.retrieve`: the "
        "defaults, dense only and BM25 only (one weight 0, query time boost off). Margin = "
        "defaults - max(dense only, BM25 only), in points. The check (issue 14) holds when "
        f"every margin is >= -{res['tolerance']}; `tests/integration/test_fusion_never_hurts.py` "
        "enforces it in `make test`.",
        "",
    ]
    rows: list[list[object]] = []
    for r in res["rows"]:
        rows.append(
            [
                r["dataset"],
                r["formulation"],
                f"{r['defaults']['r@5']} / {r['defaults']['r@10']}",
                f"{r['dense only']['r@5']} / {r['dense only']['r@10']}",
                f"{r['BM25 only']['r@5']} / {r['BM25 only']['r@10']}",
                f"{r['margin r@5']:+} / {r['margin r@10']:+}",
            ]
        )
    out += table(
        [
            "dataset",
            "formulation / mode",
            "defaults R@5 / R@10",
            "dense only",
            "BM25 only",
            "margin",
        ],
        rows,
    )
    verdict = "holds" if res["ok"] else "FAILS"
    out += [f"Worst margin: **{res['worst_margin']:+}** (the check {verdict}).", ""]
    return out
