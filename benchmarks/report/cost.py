"""The LLM cost section: the full LoCoMo replay and the batch-size sweep."""

from __future__ import annotations

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema_system import CostDoc, SweepDoc, SweepResults, SweepRow

SWEEP_HEADER = [
    "batch_max_turns",
    "turns",
    "batches",
    "turns / batch",
    "LLM calls / 1k turns",
    "extraction calls",
    "arbitration calls",
    "prompt tokens / 1k turns",
    "tokens / call",
    "run s",
]


def cost_section(cost: CostDoc | None, sweep: SweepDoc | None) -> list[str]:
    """LLM calls and prompt tokens: the full replay and the batch-size sweep."""
    out = ["## LLM cost of consolidation", ""]
    out += replay_lines(cost) if cost else ["_No results for cost_bench yet._", ""]
    if sweep:
        out += sweep_lines(sweep)
    return out


def replay_lines(cost: CostDoc) -> list[str]:
    """memlane's calls and tokens per turn next to a full-context baseline."""
    c = cost["results"]
    out = [*provenance(cost), ""]
    out += [
        f"LoCoMo replay through the real pipeline ({cost['params']['conversations']} "
        f"conversations, batch_max_turns {cost['params']['batch_max_turns']}, "
        f"{c['turns']} turns), the fake LLM server answering with LoCoMo's observations; "
        f"prompt tokens counted with tiktoken `{cost['params']['encoding']}`.",
        "",
    ]
    rows: list[list[object]] = [
        [
            "LLM calls per 100 turns",
            c["llm_calls_per_100_turns"],
            c["full_context_llm_calls_per_100_turns"],
        ],
        [
            "prompt tokens per turn",
            c["prompt_tokens_per_turn"],
            c["full_context_prompt_tokens_per_turn"],
        ],
        [
            "extraction / arbitration calls",
            f"{c['extraction_calls']} / {c['arbitration_calls']}",
            "",
        ],
        ["batches", c["batches"], ""],
    ]
    return out + table(["figure", "memlane", "full-context baseline"], rows)


def sweep_lines(sweep: SweepDoc) -> list[str]:
    """Calls and tokens per 1,000 turns for each batch size, and where the curve flattens."""
    r = sweep["results"]
    out = ["### Calls and tokens per 1,000 turns against batch size", "", *provenance(sweep)]
    out += ["", r["note"], ""]
    out += table(SWEEP_HEADER, [sweep_row(x) for x in r["rows"]])
    st = r["session_turns"]
    return [
        *out,
        f"Session lengths in this replay: min {st['min']}, median {st['median']}, max "
        f"{st['max']} turns ({r['sessions']} sessions). " + cost_bend(r),
        "",
        "![LLM calls and tokens vs batch size](img/cost_sweep.png)",
        "",
    ]


def sweep_row(x: SweepRow) -> list[object]:
    """One batch size of the sweep."""
    return [
        x["batch_max_turns"],
        x["turns"],
        x["batches"],
        x["mean_turns_per_batch"],
        x["llm_calls_per_1000_turns"],
        x["extraction_calls"],
        x["arbitration_calls"],
        f"{x['prompt_tokens_per_1000_turns']:,}",
        x["prompt_tokens_per_call"],
        x["seconds"],
    ]


def cost_bend(r: SweepResults) -> str:
    """Where the calls-per-turn curve flattens, from the sweep rows."""
    rows = r["rows"]
    if len(rows) < 2:
        return ""
    first, last = rows[0], rows[-1]
    text = (
        f"From batch_max_turns {first['batch_max_turns']} to {last['batch_max_turns']}, LLM "
        f"calls per 1,000 turns go from {first['llm_calls_per_1000_turns']} to "
        f"{last['llm_calls_per_1000_turns']} and prompt tokens per 1,000 turns from "
        f"{first['prompt_tokens_per_1000_turns']:,} to {last['prompt_tokens_per_1000_turns']:,} "
        f"(tokens per call grow from {first['prompt_tokens_per_call']} to "
        f"{last['prompt_tokens_per_call']}, as each prompt carries more turns). "
    )
    capped = [x for x in rows if x["batches"] <= 1.05 * r["sessions"]]
    if capped:
        c = capped[0]
        return text + (
            f"The curve flattens by batch_max_turns {c['batch_max_turns']}: there every session is "
            f"about one batch ({c['batches']} batches for {r['sessions']} sessions; median "
            f"session {r['session_turns']['median']} turns), and larger batches cannot cut "
            "calls further, because the idle timer closes a batch when a conversation pauses."
        )
    return text + (
        "Calls fall roughly as 1 / batch size over the whole range: no session is yet a "
        "single batch."
    )
