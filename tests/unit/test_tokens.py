"""CJK-aware tokenisation and language detection."""

from __future__ import annotations

from memlane.text.tokens import detect_language, is_cjk, tokenize


def test_chinese_run_becomes_search_mode_words() -> None:
    """A Chinese run yields jieba search-mode words: the word and its dictionary sub-words."""
    assert tokenize("吉他手") == ["吉他", "吉他手"]
    assert set(tokenize("数学考试")) == {"数学", "考试", "数学考试"}


def test_chinese_stop_words_and_filler_are_dropped() -> None:
    """Function words, pronouns and filler (嗯, 哈哈, 那个, 就是...) leave no token."""
    assert tokenize("嗯嗯哈哈那个就是然后其实真的") == []
    assert tokenize("我的吉他") == ["吉他"]


def test_query_bigram_is_among_the_document_tokens() -> None:
    """The seed scenario: 吉他 in a query matches 用户爱好是吉他 token for token."""
    doc = set(tokenize("用户爱好是吉他。"))
    assert set(tokenize("吉他")) <= doc


def test_english_is_lowercased_words_without_punctuation() -> None:
    """Latin text splits on non-word characters and is case-folded."""
    assert tokenize("Hello, World! Its 2024.") == ["hello", "world", "2024"]


def test_underscore_and_operators_are_separators() -> None:
    """FTS syntax characters never survive into tokens."""
    assert tokenize('x_b "c" e* e:f -g') == ["x", "b", "c", "e", "e", "f", "g"]


def test_mixed_text_keeps_both_scripts() -> None:
    """Chinese and English in one string are tokenised each their own way."""
    assert tokenize("我爱Python") == ["爱", "python"]


def test_full_width_forms_are_normalised() -> None:
    """NFKC folds full-width Latin letters and digits to ASCII."""
    assert tokenize("ＡＢＣ１２３") == ["abc123"]


def test_single_cjk_character_has_no_bigram() -> None:
    """A one-character run yields just that character."""
    assert tokenize("猫") == ["猫"]


def test_empty_and_punctuation_only_text_has_no_tokens() -> None:
    """Nothing searchable yields an empty list."""
    assert tokenize("") == []
    assert tokenize("?!。, ") == []


def test_japanese_kana_and_korean_count_as_cjk() -> None:
    """Kana and Hangul runs (no segmenter for them) become characters plus bigrams."""
    assert is_cjk("ひらがな")
    assert is_cjk("한국어")
    assert "한국" in tokenize("한국어")


def test_detect_language_chinese_and_english() -> None:
    """Mostly-CJK text is zh; Latin text is en."""
    assert detect_language("你知道我的乐器爱好是什么?") == "zh"
    assert detect_language("What instrument do I play?") == "en"


def test_detect_language_mixed_and_empty() -> None:
    """A fair share of CJK is enough for zh; text without letters defaults to en."""
    assert detect_language("我喜欢 jazz") == "zh"
    assert detect_language("I said 你好 once in a long English sentence") == "en"
    assert detect_language("12345 !!") == "en"


def test_english_words_are_stemmed_and_stop_words_dropped() -> None:
    """ "playing the guitars" and "I play guitar" share their tokens."""
    assert tokenize("My hobby is playing the guitars") == ["hobbi", "play", "guitar"]
    assert set(tokenize("what instrument do I play")) == {"instrument", "play"}


def test_kana_stop_characters_are_dropped_but_bigrams_stay() -> None:
    """In a kana run, stop characters alone are dropped; bigrams that hold them stay."""
    assert tokenize("ねの") == ["ね", "の", "ねの"]
    assert tokenize("的ね") == ["ね", "的ね"]


def test_cjk_glued_to_a_latin_name_is_split_off() -> None:
    """A Chinese clause right after a Latin name is CJK tokens, not part of an English word."""
    assert tokenize("Bart在新开的冰淇淋店") == ["bart", "新开", "冰淇淋", "店"]


def test_cjk_glued_to_digits_is_split_off() -> None:
    """``2023年``: the number and the CJK character are separate tokens."""
    assert tokenize("2023年") == ["2023", "年"]


def test_cjk_between_latin_and_digits_is_split_off() -> None:
    """``iPhone15很喜欢``: one Latin/digit token, then the Chinese ones (很 is a stop word)."""
    assert tokenize("iPhone15很喜欢") == ["iphone15", "喜欢"]
