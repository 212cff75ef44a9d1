"""Reading corpora and cutting them into chunks that worker processes can handle independently.

A chunk boundary always sits at the first byte of an occurrence of the first special token (the
document separator, by convention), so it never splits a UTF-8 character and never a pre-token
(pre-tokenization restarts after every special token anyway). Known limit: with overlapping special
tokens (say "<|endoftext|>" and "<|endoftext|><|endoftext|>") a cut may fall inside the longer one;
training counts are unaffected (special tokens are dropped), but `encode_file` with workers then
gives two ids where `encode` gives one.
Offsets are byte offsets into the file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from accounting.errors import NotAFileError
from tokenizer.errors import CorpusError
from tokenizer.pretokenize import count_pretokens

PARALLEL_MIN_BYTES = 4 << 20
"""Inputs smaller than this (4 MiB) are pre-tokenized in-process: a pool costs more than it saves."""


def not_utf8(name: str, error: UnicodeDecodeError, offset: int = 0) -> CorpusError:
    """The error for bad UTF-8 in file `name`: the first bad byte and its byte offset in the file
    (`offset`: where the bytes that `error` was raised on start in the file)."""
    bad = error.object[error.start]
    return CorpusError(f"{name} is not UTF-8: invalid byte 0x{bad:02x} at byte offset {offset + error.start}")


def decode_utf8(data: bytes, name: str, offset: int = 0) -> str:
    """Decode bytes that start at byte `offset` of file `name`; CorpusError (`not_utf8`) if not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(name, exc, offset) from None


def read_range(path: str | os.PathLike[str], start: int, end: int) -> str:
    """Bytes [start, end) of a UTF-8 file as text (CorpusError naming the file offset of bad UTF-8)."""
    with open(path, "rb") as f:
        f.seek(start)
        return decode_utf8(f.read(end - start), str(path), start)


def read_corpus(path: str | os.PathLike[str]) -> str:
    """The whole file as text; CorpusError if it is empty or not UTF-8 (FileNotFoundError if absent)."""
    file = Path(path)
    if file.is_dir():
        raise NotAFileError(f"{file} is a directory, not a corpus file")
    data = file.read_bytes()
    if not data:
        raise CorpusError(f"{file} is empty: nothing to train or encode")
    return decode_utf8(data, str(file))


def chunk_boundaries(path: str | os.PathLike[str], num_chunks: int, split_token: bytes,
                     window: int = 1 << 16) -> list[int]:
    """Sorted byte offsets [0, ..., size]: each inner one is the start of an occurrence of `split_token`.

    Guesses evenly spaced offsets and moves each forward to the next `split_token`; duplicates
    collapse, so fewer chunks than asked come back when the token is rare (one if it never occurs).
    """
    size = os.path.getsize(path)
    cuts = {0, size}
    with open(path, "rb") as f:
        for i in range(1, num_chunks):
            pos = size * i // num_chunks
            f.seek(pos)
            carry = b""
            while True:
                block = f.read(window)
                if not block:
                    break
                found = (carry + block).find(split_token)
                if found >= 0:
                    cuts.add(pos - len(carry) + found)
                    break
                # keep a tail so a token straddling two reads is still found
                keep = carry + block
                carry = keep[-(len(split_token) - 1):] if len(split_token) > 1 else b""
                pos += len(block)
    return sorted(cuts)


def _count_chunk(args: tuple[str, int, int, tuple[str, ...]]) -> Counter[str]:
    path, start, end, special_tokens = args
    return count_pretokens(read_range(path, start, end), special_tokens)


def count_file_pretokens(path: str | os.PathLike[str], special_tokens: Sequence[str], num_workers: int = 1,
                         progress: Callable[[int, int], None] | None = None) -> Counter[str]:
    """Pre-token counts of a corpus file, over `num_workers` processes when it is large enough.

    Files of 4 MiB or more with a special token are read chunk by chunk (cut at the special token),
    so even one process holds only a chunk of text at a time.

    `progress(done_chunks, total_chunks)` is called as chunks finish.
    """
    path = str(path)
    size = os.path.getsize(path) if os.path.exists(path) else None
    if size is None or size < PARALLEL_MIN_BYTES or not special_tokens:
        counts = count_pretokens(read_corpus(path), special_tokens)
        if progress:
            progress(1, 1)
        return counts
    split_token = special_tokens[0].encode("utf-8")  # the document separator, by convention
    # about 16 MiB per chunk at least 4 chunks per worker: bounded memory, balanced pool
    cuts = chunk_boundaries(path, max(num_workers * 4, size // (16 << 20) + 1), split_token)
    jobs = [(path, a, b, tuple(special_tokens)) for a, b in zip(cuts, cuts[1:])]
    total: Counter[str] = Counter()
    if num_workers <= 1:
        results: Iterator[Counter[str]] = map(_count_chunk, jobs)
        for done, counts in enumerate(results, start=1):
            total.update(counts)
            if progress:
                progress(done, len(jobs))
        return total
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        for done, counts in enumerate(pool.map(_count_chunk, jobs), start=1):
            total.update(counts)
            if progress:
                progress(done, len(jobs))
    return total
