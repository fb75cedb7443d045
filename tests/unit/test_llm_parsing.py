"""Tolerant parsing of model replies into JSON objects (pure)."""

from __future__ import annotations

import pytest

from memlane.errors import LLMBadOutput
from memlane.llm.chat import Usage, parse_json_object


@pytest.mark.parametrize(
    "text",
    [
        '{"observations": []}',
        '```json\n{"observations": []}\n```',
        '```\n{"observations": []}\n```',
        'Sure! Here it is:\n{"observations": []}\nHope that helps.',
        '<think>the user said hi, so {nothing}</think>\n{"observations": []}',
        '  \n{"observations": []}  \n',
    ],
)
def test_the_object_is_found_around_fences_reasoning_and_chatter(text: str) -> None:
    """Fences, <think> blocks and surrounding prose are stripped."""
    assert parse_json_object(text) == {"observations": []}


def test_nested_braces_keep_the_outermost_object() -> None:
    """The outermost {...} is taken, so nested objects survive."""
    text = 'x {"a": {"b": [1, {"c": 2}]}} y'
    assert parse_json_object(text) == {"a": {"b": [1, {"c": 2}]}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no json at all", "no JSON object"),
        ("", "no JSON object"),
        ('{"observations": [', "no JSON object"),
        ('{"observations": [}', "malformed JSON"),
        ("{'single': 'quotes'}", "malformed JSON"),
    ],
)
def test_unreadable_output_raises_bad_output(text: str, message: str) -> None:
    """Anything that is not a JSON object is LLMBadOutput, with a readable reason."""
    with pytest.raises(LLMBadOutput, match=message):
        parse_json_object(text)


def test_a_json_array_is_not_an_object() -> None:
    """A top-level array inside braces-free text is refused."""
    with pytest.raises(LLMBadOutput):
        parse_json_object("[1, 2, 3]")


def test_usage_totals() -> None:
    """Total tokens are prompt plus completion."""
    assert Usage("m", 10, 5).total_tokens == 15
