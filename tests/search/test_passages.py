"""Passages: whole sentences around the best match, within the budget, plain text."""

from __future__ import annotations

from server.search.passages import (
    ELLIPSIS,
    MatchedWords,
    highlight,
    make_passage,
    split_sentences,
)

TEXT = (
    "Backups run every night. Nightly jobs call pg_dump on each primary, e.g. the orders "
    "database. The archive goes to object storage. Restores use pg_restore and take an hour. "
    "Ask the platform team for access."
)


def test_sentences_do_not_break_at_abbreviations_or_versions() -> None:
    assert split_sentences("Use v2.3.1 now. Then e.g. restart it. Done!") == [
        "Use v2.3.1 now.",
        "Then e.g. restart it.",
        "Done!",
    ]


def test_passage_is_whole_sentences_around_the_best_match() -> None:
    passage = make_passage(TEXT, {"pg_restore", "hour"}, 120)
    assert "Restores use pg_restore and take an hour." in passage
    assert len(passage) <= 120
    assert passage in " ".join(split_sentences(TEXT))  # whole sentences, in order
    assert "**" not in passage
    # With room, neighbours join (after first, then before).
    wide = make_passage(TEXT, {"pg_restore"}, 400)
    assert wide == " ".join(split_sentences(TEXT))


def test_passage_without_a_match_starts_at_the_beginning() -> None:
    assert make_passage(TEXT, set(), 60) == "Backups run every night."


def test_whole_tokens_only_and_a_long_sentence_is_cut_at_a_word() -> None:
    # "dump" must not match inside pg_dump; the sentence with the whole word wins.
    text = "We run pg_dump daily. A dump of the cache is taken weekly."
    assert make_passage(text, {"dump"}, 30) == "A dump of the cache is taken…"
    assert make_passage(text, {"dump"}, 30).endswith(ELLIPSIS)
    assert highlight("Run pg_dump, not dump.", {"pg_dump"}) == "Run **pg_dump**, not dump."


def test_words_are_whole_tokens_of_the_index_tokeniser_compared_case_blind() -> None:
    """A matched word is a token as the index cut it: joined runs stay whole, a word is
    never found inside a longer token, a sentence's full stop is not part of a token."""
    text = (
        "Use v2.3.1. Mail ops@example.com, not ops. The and/or rule holds. "
        "Naïve Müller runs it; RUN it again."
    )
    words = MatchedWords({"v2.3.1", "ops@example.com", "and", "Müller", "run"})
    assert words.highlight(text) == (
        "Use **v2.3.1**. Mail **ops@example.com**, not ops. The and/or rule holds. "
        "Naïve **Müller** runs it; **RUN** it again."
    )
    # The sentence with the most distinct words is the anchor (Müller, RUN).
    assert words.passage(text, 40) == "Naïve Müller runs it; RUN it again."
    # "and" only occurs inside the compound "and/or", which does not count for its
    # sentence: 2 words each (use, v2.3.1 / rule, holds), and the earlier sentence wins.
    assert MatchedWords({"use", "v2.3.1", "and", "rule", "holds"}).passage(text, 20) == (
        "Use v2.3.1."
    )


def test_no_words_leave_the_text_unmarked() -> None:
    assert MatchedWords(()).highlight("Nothing here.") == "Nothing here."
    assert MatchedWords(set()).passage("One.  Two\n\nthree.", 100) == "One. Two three."
