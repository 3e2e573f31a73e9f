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


def test_one_pattern_for_all_hits_finds_what_each_hits_own_would() -> None:
    """The hits of a search share one compiled pattern; a hit still shows only its words."""
    first = "Restores use pg_restore. A dump is kept."
    second = "We run pg_dump daily. The dump of the cache is weekly. Run it."
    both = MatchedWords([{"pg_restore", "dump"}, {"pg_dump", "Run"}])
    for text, words in ((first, {"pg_restore", "dump"}), (second, {"pg_dump", "Run"})):
        assert both.passage(text, words, 40) == make_passage(text, words, 40)
        assert both.highlight(text, words) == highlight(text, words)
    # "dump" is only the first hit's word: the second hit's passage does not mark it, and
    # the first hit's "pg_dump"-less text never marks the other hit's word.
    assert both.highlight(second, {"pg_dump", "Run"}) == (
        "We **run** **pg_dump** daily. The dump of the cache is weekly. **Run** it."
    )
    assert both.highlight(first, {"pg_restore", "dump"}) == (
        "Restores use **pg_restore**. A **dump** is kept."
    )
    assert both.passage(second, set(), 25) == "We run pg_dump daily."
