"""The LLM extraction quality section: the test server's run and the local model's, side by side."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema_llm import LlmDoc, LlmFigures, LlmHeadline

Run = tuple[str, LlmDoc | None]
LOCAL = (
    "`bash ../shared/tools/local-llm.sh serve` (a development aid: Qwen2.5-Coder-1.5B-Instruct, "
    "Q4_K_M, llama.cpp; calls take 40-110 s on an idle 2-core machine, minutes on a busy "
    "one), then `MEMLANE_LLM__TIMEOUT_S=1200 make bench-llm "
    'BENCH_LLM_ARGS="--out benchmarks/results/{name}.json"` with the exports it prints'
)
COMMANDS = {
    "llm_bench": "`python -m benchmarks.llm_bench --oracle`",
    "llm_bench_local_before": LOCAL.format(name="llm_bench_local_before"),
    "llm_bench_local_after": LOCAL.format(name="llm_bench_local_after"),
}


def llm_section(runs: Sequence[tuple[str, str, LlmDoc | None]]) -> list[str]:
    """Every recorded run of ``benchmarks/llm_bench.py``: overall, per language, per category.

    ``runs`` are (results file name, column label, document or None), in column order.
    """
    out = ["## LLM extraction quality", ""]
    present = [(label, doc) for _, label, doc in runs if doc is not None]
    if not present:
        return [*out, "_No results for llm_bench yet._", ""]
    out += intro(present[0][1])
    for name, label, doc in runs:
        out += run_lines(name, label, doc)
    out += same_batches(runs)
    echo = present[0][1]["results"]["baselines"]["echo_third_person"]["overall"]
    header = ["figure", *(label for label, _ in present), "echo, 3rd person"]
    out += table(header, overall_rows([doc["results"]["overall"] for _, doc in present], echo))
    out += ["Per language:", ""]
    out += table(LANGUAGE_HEADER, language_rows(present))
    out += ["Per category (precision / recall, %):", ""]
    out += table(["category", "batches", *(label for label, _ in present)], category_rows(present))
    return out


def intro(doc: LlmDoc) -> list[str]:
    """What the bench is, and the matching rule with its measured calibration."""
    p, cal = doc["params"], doc["results"]["calibration"]
    langs = ", ".join(f"{n} {lang}" for lang, n in p["languages"].items())
    zh, en = cal.get("zh"), cal.get("en")
    calibrated = ""
    if zh and en:
        calibrated = (
            f" It accepts {pct(zh['alternatives_accepted'])} % of the set's hand-written "
            f"alternative wordings in zh and {pct(en['alternatives_accepted'])} % in en (lowest "
            f"cosine {zh['alternative_cosine_min']} / {en['alternative_cosine_min']}); pairs of "
            f"unrelated expected facts score a median of {zh['unrelated_cosine_p50']} in zh and "
            f"{en['unrelated_cosine_p50']} in en, and {pct(zh['unrelated_at_or_above_threshold'])}"
            f" % / {pct(en['unrelated_at_or_above_threshold'])} % of them reach the threshold, so "
            "in Chinese the required keywords decide."
        )
    return [
        f"`benchmarks/llm_bench.py` runs {p['cases']} hand-made batches ({langs}; "
        "`benchmarks/llm_cases/`) through memlane's consolidation pipeline with the LLM "
        "extractor (real Redis buffer and extraction cache, SQLite, local embeddings) and "
        "scores the plan it would write against what a careful reader stores: plain facts, "
        "relative dates said on fixed days, changes of existing memories, chit-chat, several "
        "subjects in one turn, the assistant's words, prompt injection, and batches where "
        "copying existing memories would hide the new facts. Strict recall also needs the "
        "right event time and the right supersession.",
        "",
        f"A produced observation matches an expected one when their multilingual-e5-small "
        f"cosine is >= {p['threshold']} and the required keywords and a subject marker "
        f"(用户 / user) are in it; each produced observation matches at most one.{calibrated} "
        "The echo column stores each user turn with 我 -> 用户, I -> the user: a model that "
        "only rewrites the turns.",
        "",
    ]


def run_lines(name: str, label: str, doc: LlmDoc | None) -> list[str]:
    """Who produced one run's figures, or the command that would."""
    if doc is None:
        return [f"- **{label}**: not recorded yet; command: {COMMANDS.get(name, name)}.", ""]
    p = doc["params"]
    where = f"model `{p['model']}` at `{p['base_url']}`, json_mode {p['json_mode']}"
    partial = "" if doc["results"]["complete"] else " **(partial run)**"
    lines = [f"- **{label}**{partial}: {where}, timeout {p['timeout_s']} s."]
    return [*lines, *("  " + line for line in provenance(doc)), ""]


def same_batches(runs: Sequence[tuple[str, str, LlmDoc | None]]) -> list[str]:
    """Whether the local model's two runs scored the same batches (a fair before/after)."""
    docs = {name: doc for name, _, doc in runs if doc is not None}
    before, after = docs.get("llm_bench_local_before"), docs.get("llm_bench_local_after")
    if before is None or after is None:
        return []
    ids = [{b["id"] for b in d["results"]["batches"]} for d in (before, after)]
    if ids[0] == ids[1]:
        listed = ", ".join(sorted(ids[0]))
        return [
            f"Both local-model runs scored the same {len(ids[0])} batches ({listed}), so their "
            "columns compare like for like; the other batches were not run on the local model "
            "(about 7 min a batch on 2 cores).",
            "",
        ]
    return [
        "The local-model runs scored different batches "
        f"({len(ids[0])} before, {len(ids[1])} after, {len(ids[0] & ids[1])} shared): "
        "compare their columns with care.",
        "",
    ]


def pct(value: float | None) -> str:
    """A ratio as a percentage with one decimal ('' when not measured)."""
    return "" if value is None else f"{100 * value:.1f}"


def overall_rows(figures: Sequence[LlmFigures], echo: LlmHeadline) -> list[list[object]]:
    """One row per figure; one column per run, then the echo baseline."""
    rows: list[list[object]] = [
        ["precision %", *(pct(f["precision"]) for f in figures), pct(echo["precision"])],
        ["recall %", *(pct(f["recall"]) for f in figures), pct(echo["recall"])],
        ["F1 %", *(pct(f["f1"]) for f in figures), pct(echo["f1"])],
        [
            "strict recall %",
            *(pct(f["strict_recall"]) for f in figures),
            pct(echo["strict_recall"]),
        ],
        [
            "event times right / expected",
            *(f"{f['event_time']['correct']} / {f['event_time']['expected']}" for f in figures),
            pct(echo["event_time_recall"]) + " %",
        ],
        [
            "supersessions right / expected",
            *(f"{f['supersede']['correct']} / {f['supersede']['expected']}" for f in figures),
            pct(echo["supersede_accuracy"]) + " %",
        ],
    ]
    more: list[tuple[str, list[object]]] = [
        ("facts matched / expected", [f"{f['tp']} / {f['expected']}" for f in figures]),
        ("stored, not expected", [f["fp"] for f in figures]),
        (
            "... of which the assistant's words",
            [f["forbidden"].get("assistant", 0) for f in figures],
        ),
        ("... of which injected claims", [f["forbidden"].get("injection", 0) for f in figures]),
        ("... of which copies of existing memories", [f["copies"] for f in figures]),
        ("wrong supersessions", [f["supersede"]["wrong"] for f in figures]),
        ("merges into memories not restated", [f["merges_unexpected"] for f in figures]),
        (
            "lasting facts given an event time",
            [
                f"{f['event_time']['lasting_with_time']} / {f['event_time']['lasting_matched']}"
                for f in figures
            ],
        ),
        (
            "nothing-to-remember batches left empty",
            [
                f"{f['nothing_to_remember']['clean']} / {f['nothing_to_remember']['batches']}"
                for f in figures
            ],
        ),
        ("replies rejected / repaired / failed", [_outputs(f) for f in figures]),
        ("memlane's checks: refused or repaired", [_checks(f) for f in figures]),
        ("LLM calls per batch", [f["per_batch"]["llm_calls"] for f in figures]),
        ("tokens per batch (prompt + completion)", [_tokens(f) for f in figures]),
        ("seconds per batch (mean / max)", [_seconds(f) for f in figures]),
    ]
    return rows + [[name, *cells, ""] for name, cells in more]


def _checks(f: LlmFigures) -> str:
    """``copy 3, speaker 1`` from the ``checks.*`` warnings (runs before the checks: ``-``)."""
    found = {k[7:]: n for k, n in f["warnings"].items() if k.startswith("checks.")}
    return ", ".join(f"{k} {n}" for k, n in sorted(found.items())) or "-"


def _outputs(f: LlmFigures) -> str:
    o = f["outputs"]
    return f"{o['rejected']} / {o['repaired']} / {o['failed']}"


def _tokens(f: LlmFigures) -> str:
    c = f["per_batch"]
    return f"{c['prompt_tokens']:.0f} + {c['completion_tokens']:.0f}"


def _seconds(f: LlmFigures) -> str:
    c = f["per_batch"]
    return f"{c['seconds_mean']} / {c['seconds_max']}"


LANGUAGE_HEADER = [
    "run",
    "language",
    "batches",
    "precision %",
    "recall %",
    "F1 %",
    "strict recall %",
    "event times right",
    "supersessions right / wrong",
    "rejected",
]


def language_rows(present: Sequence[tuple[str, LlmDoc]]) -> list[list[object]]:
    """One row per run and language."""
    rows: list[list[object]] = []
    for label, doc in present:
        for language, f in doc["results"]["by_language"].items():
            rows.append(
                [
                    label,
                    language,
                    f["batches"],
                    pct(f["precision"]),
                    pct(f["recall"]),
                    pct(f["f1"]),
                    pct(f["strict_recall"]),
                    f"{f['event_time']['correct']} / {f['event_time']['expected']}",
                    f"{f['supersede']['correct']} / {f['supersede']['wrong']}",
                    f["outputs"]["rejected"],
                ]
            )
    return rows


def category_rows(present: Sequence[tuple[str, LlmDoc]]) -> list[list[object]]:
    """One row per category: precision / recall of each run."""
    first = present[0][1]["results"]["by_category"]
    rows: list[list[object]] = []
    for category, f in first.items():
        cells = []
        for _, doc in present:
            g = doc["results"]["by_category"].get(category)
            cells.append(f"{pct(g['precision']) or '-'} / {pct(g['recall']) or '-'}" if g else "")
        rows.append([category, f["batches"], *cells])
    return rows
