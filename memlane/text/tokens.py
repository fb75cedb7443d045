"""Text helpers: CJK-aware tokenisation for BM25 and language detection. Pure functions."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
# CJK characters are ``\w`` too, so the Latin branch must exclude them explicitly: with
# ``[^\W_]+`` a clause glued to a Latin name or a digit ("Bart在新开的冰淇淋店") became one
# "English" token, stemmed, and invisible to BM25.
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def is_cjk(text: str) -> bool:
    """True when ``text`` starts with a CJK character."""
    return bool(_CJK_RUN.match(text))


# Function words that match nearly every memory and only add noise to BM25.
EN_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t d ll m re ve don didn doesn isn wasn""".split()
)
CJK_STOP_CHARS = frozenset("的了是我你吗呢吧啊么")
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The English Snowball stem of a lowercased word ("playing" -> "play")."""
    return str(_stemmer.stemWord(word))


def tokenize(text: str) -> list[str]:
    """BM25 tokens: stemmed English words without stop words; CJK as characters plus bigrams.

    "用户爱好是吉他" yields 用 户 爱 好 吉 他 and 用户 户爱 爱好 好是 是吉 吉他, so a query for
    吉他 matches without a Chinese word segmenter. Single-character CJK function words (的, 是,
    我, ...) are dropped, but bigrams that contain them stay.
    """
    norm = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN.finditer(norm):
        run = match.group()
        if is_cjk(run):
            tokens.extend(ch for ch in run if ch not in CJK_STOP_CHARS)
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in EN_STOPWORDS:
            tokens.append(stem(run))
    return tokens


def detect_language(text: str) -> str:
    """``zh`` when CJK characters make up a fair share of the letters, else ``en``."""
    cjk = sum(len(m) for m in _CJK_RUN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and cjk / letters >= 0.3 else "en"
