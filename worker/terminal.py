"""Text that the command line prints from stored or remote data, made safe for a terminal.

Chat turns, memories and model replies are untrusted: an ANSI escape sequence in them could
recolour, rewrite or hide what the operator sees (or, on some terminals, set the window title
or the clipboard). :func:`printable` shows every control character, and the Unicode bidi
controls that reorder text, as a visible escape (``\\x1b``, ``\\u202e``) instead, and
:func:`safe` also masks the configured secrets.
"""

from __future__ import annotations

import re

from memlane.redaction import Redactor

# C0 and C1 controls and DEL (tab allowed), plus the bidi embedding/override/isolate marks.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, keep_newlines: bool = False, json: bool = False) -> str:
    """``text`` with control characters shown as escapes; one line unless ``keep_newlines``.

    ``json=True`` is for JSON output (newlines kept, ``\\uXXXX`` escapes): a JSON parser
    reads the escaped text back as the original string.
    """
    pattern = _UNSAFE_KEEP_NEWLINES if keep_newlines or json else _UNSAFE
    return pattern.sub(_json_escape if json else _escape, text)


def safe(text: str, redactor: Redactor, keep_newlines: bool = False, json: bool = False) -> str:
    """``text`` with the configured secrets masked, then made printable."""
    return printable(redactor.text(text), keep_newlines, json)
