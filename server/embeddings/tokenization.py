"""Fast-tokenizer set-ups shared by the backends: one for encoding, one for counting."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def encoding_tokenizer(tokenizer_file: Path, max_length: int) -> Any:
    """The model's Rust tokenizer set up as sentence-transformers calls it: truncate at the
    model window (the packaged file says 128, sentence-transformers uses 256), pad to the
    longest text of the batch. Encoding only reads these settings, so threads may share it."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=max_length)
    padding = tokenizer.padding or {}
    pad_token = str(padding.get("pad_token") or "[PAD]")
    pad_id = padding.get("pad_id")
    if pad_id is None:
        pad_id = tokenizer.token_to_id(pad_token) or 0
    tokenizer.enable_padding(
        pad_id=int(pad_id), pad_token=pad_token, pad_type_id=int(padding.get("pad_type_id", 0))
    )
    return tokenizer


def counting_tokenizer(tokenizer_json: str) -> Any:
    """A private copy with truncation and padding off, for counting word pieces. Changing
    those settings on a tokenizer another thread encodes with would race with it."""
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(tokenizer_json)
    counter.no_truncation()
    counter.no_padding()
    return counter


__all__ = ["counting_tokenizer", "encoding_tokenizer"]
