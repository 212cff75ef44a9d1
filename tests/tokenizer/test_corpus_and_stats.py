"""The default stdlib-documentation corpus and the stats function."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokenizer import (DOCUMENT_SEPARATOR, CorpusError, Tokenizer, stdlib_corpus_text, tokenizer_stats,
                       write_stdlib_corpus)

_HASH = "import hashlib, tokenizer.corpus as c; print(hashlib.sha256(c.stdlib_corpus_text().encode()).hexdigest())"


def test_corpus_is_large_english_and_separated():
    text = stdlib_corpus_text()
    size = len(text.encode("utf-8"))
    assert 1_000_000 < size < 4_000_000
    documents = text.split(DOCUMENT_SEPARATOR)
    assert len(documents) > 100 and all(documents)
    assert " the " in text and "assert" in text


def test_corpus_is_identical_in_a_fresh_process():
    fresh = subprocess.run([sys.executable, "-c", _HASH], capture_output=True, text=True, check=True,
                           cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    here = __import__("hashlib").sha256(stdlib_corpus_text().encode()).hexdigest()
    assert fresh.stdout.strip() == here


def test_max_bytes_never_splits_a_character(tmp_path):
    text = stdlib_corpus_text()
    for limit in range(1000, 1040):
        cut = stdlib_corpus_text(limit)
        assert len(cut.encode("utf-8")) <= limit and text.startswith(cut)
    written = write_stdlib_corpus(tmp_path / "c.txt", 5000)
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == stdlib_corpus_text(5000)
    assert written == len(stdlib_corpus_text(5000).encode("utf-8"))


def test_stats_count_bytes_and_tokens():
    byte_level = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    text = "héllo" + DOCUMENT_SEPARATOR + "€" + DOCUMENT_SEPARATOR
    stats = tokenizer_stats(byte_level, text)
    # bytes only: one token per UTF-8 byte; "héllo" is 6 bytes, "€" is 3
    assert (stats.n_documents, stats.n_tokens, stats.utf8_bytes) == (2, 9, 9)
    assert stats.bytes_per_token == 1.0
    assert (stats.utf16_bytes, stats.utf32_bytes) == (2 * 6, 4 * 6)
    assert stats.bytes_per_second > 0
    with pytest.raises(CorpusError):
        tokenizer_stats(byte_level, DOCUMENT_SEPARATOR)
    assert tokenizer_stats(byte_level, "a<|endoftext|>b<|endoftext|>c", max_documents=2).n_documents == 2
