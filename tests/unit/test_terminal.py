"""Text from chat turns and models is shown, never obeyed, by the terminal."""

from __future__ import annotations

import pytest

from memlane.redaction import Redactor
from worker.terminal import printable, safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ANSI colour
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: set the window title
        ("\x9b2J", "\\x9b2J"),  # C1 CSI: clear screen on some terminals
        ("fake\rline", "fake\\x0dline"),  # carriage return overwrites the line
        ("a\nb", "a\\x0ab"),  # one memory, one line
        ("abc\u202edcba", "abc\\u202edcba"),  # bidi override reorders what follows
        ("\x7f\x00", "\\x7f\\x00"),
    ],
)
def test_control_characters_are_shown_as_escapes(text: str, shown: str) -> None:
    """Escape sequences, CR, newlines and bidi overrides become visible escapes."""
    assert printable(text) == shown


def test_ordinary_text_tabs_and_cjk_are_kept() -> None:
    """Tabs, CJK, emoji (with joiners) pass unchanged."""
    text = "用户爱好是吉他。\tI 👩\u200d💻 code"
    assert printable(text) == text


def test_newlines_can_be_kept_for_multi_line_replies() -> None:
    """A chat reply keeps its lines; the escapes inside are still neutralised."""
    assert printable("one\ntwo\x1b[2J", keep_newlines=True) == "one\ntwo\\x1b[2J"


def test_safe_masks_configured_secrets_too() -> None:
    """safe() = redaction of the configured secrets, then printable."""
    assert safe("key mlk_1234 \x1b[0m", Redactor.of(["mlk_1234"])) == "key *** \\x1b[0m"


def test_json_output_stays_valid_json() -> None:
    """In JSON mode controls become \\uXXXX escapes, which a JSON parser reads back."""
    import json

    text = json.dumps({"user_id": "evil\u202eexe\x9b"}, ensure_ascii=False, indent=2)
    shown = printable(text, json=True)
    assert "\u202e" not in shown and "\x9b" not in shown and "\n" in shown
    assert json.loads(shown) == {"user_id": "evil\u202eexe\x9b"}
