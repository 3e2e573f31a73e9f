"""Migration 0010's tokeniser yields exactly the terms of 0003's, text by text.

0003's definition is created beside it as a temporary function (from the migration's own
downgrade text), and both tokenise the repository's prose (the docs and the sample
company's documents: English, Markdown, identifiers, paths, code) plus generated text
built from the characters the token pattern and the shape test treat specially. Terms are
compared as sorted lists, so a term gained, lost, stemmed differently or counted a
different number of times fails; only the order within one text may differ.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = importlib.import_module("migrations.versions.0010_tokeniser_one_pass")

HAND_PICKED = [
    "",
    "   ",
    "!!! ... ---",
    "the a an of and",
    "PaymentGateway.charge(amount) HTTPServerError getHTTPResponse v2.3.1 user@example.com",
    "https://intranet.example.com/wiki/Foo_Bar#section-2 C++ C# x86_64 10.0.0.1:8080",
    "Ærøskøbing naïve café résumé STRASSE straße ΑΘΗΝΑ 東京都 データベース привет",
    "XMLHttpRequest JSONParser aB Ab ABc ABCd ABCDe iOS eBay",
    "state-of-the-art e-mail co-operation 3D 2FA SHA256 sha-256 O'Reilly don't",
    "A-" * 50 + "B",
    "foo__bar--baz..qux @@x ##y ++z :a: /b/",
    "CamelCaseWordsThatGoOnAndOnUntilTheWholeTokenIsLongerThanSixtyFourCharacters.method",
    "running runs ran runner easily fairly generously",
    "1234 56.78 9,000 1e10 0x1F",
]


def _texts() -> list[str]:
    files = [*sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.md"))]
    # Paragraphs: many texts of chunk size rather than a few whole files.
    prose = [p for f in files for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    rng = random.Random(8)
    alphabet = "abzXYZ019-_./@:+# éÉß東\n\t"
    generated = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(2000)
    ]
    return [*HAND_PICKED, *prose, *generated]


def test_one_pass_terms_equal_the_per_token_definition(fresh_database: str) -> None:
    reference = MIGRATION.SHAPE_TESTED_TWICE.replace(
        "CREATE OR REPLACE FUNCTION kb_bm25_terms(", "CREATE FUNCTION pg_temp.terms_0003("
    )
    assert "pg_temp.terms_0003" in reference
    texts = _texts()
    assert len(texts) > 2500
    with psycopg.connect(fresh_database) as conn:
        installed = conn.execute("SELECT pg_get_functiondef('kb_bm25_terms'::regproc)").fetchone()
        assert installed is not None and "WITH tokens AS" in installed[0]  # 0010's, migrated
        conn.execute(reference)
        rows = conn.execute(
            "SELECT d.doc,"
            " array(SELECT t FROM kb_bm25_terms(d.doc) t ORDER BY t),"
            " array(SELECT t FROM pg_temp.terms_0003(d.doc) t ORDER BY t)"
            " FROM unnest(%s::text[]) AS d(doc)",
            (texts,),
        ).fetchall()
    differing = [(doc[:60], new, old) for doc, new, old in rows if new != old]
    assert not differing, differing[:3]
    # Not vacuous: the texts yield terms, compound and CamelCase ones among them.
    terms = [t for _, new, _ in rows for t in new]
    assert len(terms) > 20_000
    assert {"paymentgateway", "payment", "gateway", "v2.3.1"} <= set(terms)
