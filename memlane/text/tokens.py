"""Text helpers: tokenisation for BM25 (English words, Chinese words) and language detection.

Both stores index the tokens made here (SQLite FTS5 and the Elasticsearch ``search_text``
field), so a change of :func:`tokenize` changes what is indexed: :data:`TOKENIZER_VERSION` is
bumped with it, and each store rebuilds or refuses an index built with other tokens.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from types import ModuleType

import snowballstemmer

from memlane.text.stopwords import CJK_STOP_CHARS, EN_STOPWORDS, ZH_STOPWORDS

__all__ = ["CJK_STOP_CHARS", "EN_STOPWORDS", "TOKENIZER_VERSION", "ZH_STOPWORDS"]

# 1: CJK characters + bigrams. 2: the CJK split fix, and Chinese words (jieba search mode)
# minus stop words and filler.
TOKENIZER_VERSION = 2

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = _HAN + r"\u3040-\u30ff\uac00-\ud7af"
# CJK characters are ``\w`` too, so the Latin branch must exclude them explicitly: with
# ``[^\W_]+`` a clause glued to a Latin name or a digit ("Bart在新开的冰淇淋店") became one
# "English" token, stemmed, and invisible to BM25.
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_HAN_ONLY = re.compile(rf"[{_HAN}]+")
_stemmer = snowballstemmer.stemmer("english")


def is_cjk(text: str) -> bool:
    """True when ``text`` starts with a CJK character."""
    return bool(_CJK_RUN.match(text))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The English Snowball stem of a lowercased word ("playing" -> "play")."""
    return str(_stemmer.stemWord(word))


@lru_cache(maxsize=1)
def _segmenter() -> ModuleType:
    # Imported at first use: loading jieba's dictionary takes about 1.3 s, which a process
    # that never sees Chinese should not pay.
    import rjieba

    return rjieba


def chinese_words(run: str) -> list[str]:
    """The BM25 tokens of a run of Chinese characters: jieba search-mode words, no stop words.

    Search mode gives a long word and its dictionary sub-words (数学考试 -> 数学, 考试,
    数学考试), so a query that segments differently still matches. Function words, pronouns
    and conversational filler (的, 我, 嗯, 哈哈, 那个, 就是...) are dropped: they occur in
    nearly every chat turn and only add noise.
    """
    return [w for w in _segmenter().cut_for_search(run) if w.strip() and w not in ZH_STOPWORDS]


def characters_and_bigrams(run: str) -> list[str]:
    """The tokens of a kana or Hangul run: each character (bar stop characters), then pairs."""
    chars = [ch for ch in run if ch not in CJK_STOP_CHARS]
    return chars + [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize(text: str) -> list[str]:
    """BM25 tokens: stemmed English words without stop words; Chinese words without filler.

    "用户爱好是吉他" yields 用户 爱好 吉他, so a query for 吉他 matches. Runs holding kana or
    Hangul (no segmenter for them here) become characters plus bigrams.
    """
    norm = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN.finditer(norm):
        run = match.group()
        if not is_cjk(run):
            if run not in EN_STOPWORDS:
                tokens.append(stem(run))
        elif _HAN_ONLY.fullmatch(run):
            tokens.extend(chinese_words(run))
        else:
            tokens.extend(characters_and_bigrams(run))
    return tokens


def detect_language(text: str) -> str:
    """``zh`` when CJK characters make up a fair share of the letters, else ``en``."""
    cjk = sum(len(m) for m in _CJK_RUN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and cjk / letters >= 0.3 else "en"
