"""The benchmark corpus gives the distinct texts it promises, or says it cannot."""

import pytest

from benchmarks.api_bench import search_queries
from benchmarks.corpus import query_texts


def test_query_texts_are_distinct_and_as_many_as_asked() -> None:
    texts = query_texts(500)
    assert len(texts) == 500
    assert len(set(texts)) == 500


def test_query_texts_refuse_more_than_the_templates_give() -> None:
    with pytest.raises(ValueError, match=r"asked for 5000 distinct texts; the templates give only"):
        query_texts(5000)


def test_api_bench_names_the_option_when_its_searches_outrun_the_corpus() -> None:
    assert len(search_queries(300, [1, 8, 32])) == 300 * 3 * 2 + 20
    with pytest.raises(SystemExit, match=r"--searches 1000 over 3 levels"):
        search_queries(1000, [1, 8, 32])
