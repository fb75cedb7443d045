"""Text helpers: CJK-aware tokenisation for BM25 and language detection. Pure functions."""

from __future__ import annotations

import re
import unicodedata

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def is_cjk(text: str) -> bool:
    """True when ``text`` starts with a CJK character."""
    return bool(_CJK_RUN.match(text))


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens; CJK runs become single characters plus bigrams.

    "用户爱好是吉他" yields 用 户 爱 好 是 吉 他 and 用户 户爱 爱好 好是 是吉 吉他, so a query for
    吉他 matches without a Chinese word segmenter.
    """
    norm = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN.finditer(norm):
        run = match.group()
        if is_cjk(run):
            tokens.extend(run)
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            tokens.append(run)
    return tokens


def detect_language(text: str) -> str:
    """``zh`` when CJK characters make up a fair share of the letters, else ``en``."""
    cjk = sum(len(m) for m in _CJK_RUN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and cjk / letters >= 0.3 else "en"
