"""The recall-modes section: LoCoMo recall with raw turns, observations, or both."""

from __future__ import annotations

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema import Mode, ModesDoc, ModesResults


def modes_section(doc: ModesDoc) -> list[str]:
    """LoCoMo recall per memory mode, per category, next to the paper's figures."""
    res = doc["results"]
    out = ["## Recall modes on LoCoMo: raw turns, observations, both", "", *provenance(doc), ""]
    first = res["modes"][0]
    obs = next((m for m in res["modes"] if "observation_import" in m), None)
    api = (
        obs["observation_import"]["api"]
        if obs and "observation_import" in obs
        else "import_memories"
    )
    out += [
        f"Conversations {', '.join(res['conversations'])}, questions of categories 1-4 with "
        f"evidence ({first['defaults']['overall']['n']}), top-25 through "
        "`MemoryClient.retrieve` with the default settings, SQLite. **Raw turns**: one memory "
        "per dialog turn (raw mode). **Observations**: the dataset's own per-session "
        f"observations imported through the public `{api}` (kind observation, recorded_at = "
        "the session date, source_turn_ids = the evidence dia_ids). **Both**: the two sets in "
        "one user's memory. Evidence recall@k = share of a question's evidence ids among the "
        "source turns of the top-k memories. Paper figures: LoCoMo (Maharana et al. 2024), "
        "DRAGON retriever, over the whole 10-conversation set.",
        "",
    ]
    out += table(["mode", "category", "questions", "R@1", "R@5", "R@10", "R@25"], mode_rows(res))
    counts = [
        f"{m['mode']}: {memories(m)} turn memories + {observations(m)} observations"
        for m in res["modes"]
    ]
    out += ["Memories per mode: " + "; ".join(counts) + ".", ""]
    out += ["![LoCoMo recall by mode](img/recall_modes.png)", ""]
    return out


def mode_rows(res: ModesResults) -> list[list[object]]:
    """Per mode: a row per category, the overall row in bold, and the paper's figure."""
    rows: list[list[object]] = []
    for m in res["modes"]:
        d = m["defaults"]
        for cat, v in d["per_category"].items():
            rows.append([m["mode"], cat, v["n"], v["r@1"], v["r@5"], v["r@10"], v["r@25"]])
        o = d["overall"]
        rows.append(
            [
                f"**{m['mode']}**",
                "**overall**",
                o["n"],
                o["r@1"],
                f"**{o['r@5']}**",
                f"**{o['r@10']}**",
                f"**{o['r@25']}**",
            ]
        )
        a = res["anchors"].get(m["mode"])
        if a:
            rows.append(
                [f"{m['mode']}: LoCoMo paper", "overall", "", "", a["r@5"], a["r@10"], a["r@25"]]
            )
    return rows


def memories(mode: Mode) -> int:
    """Turn memories a mode loaded (0 when it loaded none)."""
    return mode["raw_load"]["memories"] if "raw_load" in mode else 0


def observations(mode: Mode) -> int:
    """Observations a mode imported (0 when it imported none)."""
    return mode["observation_import"]["observations"] if "observation_import" in mode else 0
