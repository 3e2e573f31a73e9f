"""Refusing any source query that is not one read-only SELECT.

The check is lexical and deliberately strict, because databases lex SQL differently (MySQL
reads backslash escapes and ``#`` comments, PostgreSQL has ``$$`` quoting, SQL Server
``[...]`` identifiers), and a guard that lexes a query differently from the server could
be fooled into missing a second statement. So, besides requiring one SELECT (or WITH ...
SELECT) statement, it refuses the constructs whose meaning differs between dialects:
comments, backslashes, ``$`` outside string literals and quote characters inside
``[...]``. Within what is left, every dialect sees the same string literals, so the words
outside them are exactly what the server will execute.

This is the first line. The second is the read-only transaction every read runs in (see
:mod:`connectors.sql_session`), where the dialect has one.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Statement words that can write, lock or run code. Words that only ever start a statement
# (SET, COPY, ...) cannot appear once the query is one SELECT, and many are common column
# names, so they are not listed. A column named like a listed word can be quoted.
_FORBIDDEN_WORDS = frozenset(
    """
    INSERT UPDATE DELETE MERGE UPSERT CREATE ALTER DROP TRUNCATE RENAME GRANT REVOKE
    INTO OUTFILE DUMPFILE LOCK UNLOCK EXEC EXECUTE CALL PRAGMA ATTACH DETACH VACUUM
    REINDEX PREPARE DEALLOCATE DECLARE SAVEPOINT LISTEN NOTIFY SHUTDOWN
    """.split()  # noqa: SIM905 (a word list reads better than quotes)
)
# REPLACE is also the common string function; only a call of it is allowed.
_FUNCTION_ONLY_WORDS = frozenset({"REPLACE"})
# Functions that change state or reach outside the database even inside a SELECT.
_FORBIDDEN_FUNCTIONS = frozenset(
    """
    nextval setval set_config lo_import lo_export lo_unlink lo_create lo_from_bytea
    lo_put dblink dblink_exec pg_terminate_backend pg_cancel_backend pg_reload_conf
    pg_rotate_logfile pg_file_write pg_sleep sleep benchmark get_lock release_lock
    load_file sys_exec sys_eval xp_cmdshell openrowset opendatasource
    """.split()  # noqa: SIM905 (a word list reads better than quotes)
)
_QUOTES = {"'": "'", '"': '"', "`": "`"}


class UnsafeQuery(ValueError):
    """The query is not a single read-only SELECT; the message says why."""


def check_select(query: str) -> str:
    """Return the query without a trailing ``;`` if it is one plain SELECT; else raise."""
    text = query.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise UnsafeQuery("the query is empty")
    if "\\" in text:
        raise UnsafeQuery("backslashes are not allowed (string escapes differ between databases)")
    code = _code_outside_literals(text)
    if ";" in code:
        raise UnsafeQuery("only one statement is allowed (found ';')")
    words = [m.group(0) for m in _WORD.finditer(code)]
    first = next(iter(words), "").upper()
    if first not in ("SELECT", "WITH") or not code.lstrip("( \t\r\n").upper().startswith(first):
        raise UnsafeQuery("the query must be a SELECT (or WITH ... SELECT)")
    for match in _WORD.finditer(code):
        word = match.group(0)
        is_call = code[match.end() :].lstrip().startswith("(")
        upper = word.upper()
        if upper in _FORBIDDEN_WORDS or (upper in _FUNCTION_ONLY_WORDS and not is_call):
            raise UnsafeQuery(
                f"{upper} is not allowed in a read-only query (quote it if it is a column name)"
            )
        if is_call and word.lower() in _FORBIDDEN_FUNCTIONS:
            raise UnsafeQuery(f"the function {word}() is not allowed in a read-only query")
    if re.search(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b", code, re.IGNORECASE):
        raise UnsafeQuery("row locking (FOR UPDATE/SHARE) is not allowed")
    return text


def _code_outside_literals(text: str) -> str:
    """The query with quoted literals and identifiers blanked out; raises on ambiguity."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in _QUOTES:
            close = _QUOTES[c]
            j = i + 1
            while True:
                j = text.find(close, j)
                if j == -1:
                    raise UnsafeQuery(f"unterminated {c}...{close} literal")
                if text.startswith(close * 2, j):  # doubled quote: an escaped quote
                    j += 2
                    continue
                break
            out.append(" ")
            i = j + 1
            continue
        if text.startswith(("--", "/*"), i) or c == "#":
            raise UnsafeQuery("comments are not allowed (their syntax differs between databases)")
        if c == "$":
            raise UnsafeQuery("'$' is only allowed inside string literals")
        if c == "[":
            end = text.find("]", i)
            if end != -1 and any(q in text[i:end] for q in ("'", '"', "`", ";")):
                raise UnsafeQuery("quotes or ';' inside [...] are ambiguous between databases")
        out.append(c)
        i += 1
    return "".join(out)


__all__ = ["UnsafeQuery", "check_select"]
