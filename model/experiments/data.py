"""The experiments' token data: a corpus BPE-tokenized by the project's own tokenizer, cached.

Default corpus: the Python standard-library documentation built by `tokenizer.corpus` (about
1.6 MB of English text, byte-identical for one Python version). A user's UTF-8 text file can
replace it (`--corpus`), or an already tokenized .npy/.bin file (`--tokens`, vocab = max id + 1).

Cache: `<cache_dir>/<sha256 of the text, 16 hex>-v<vocab_size>/` holds the trained tokenizer
(vocab.json, merges.txt, special_tokens.json) and `tokens.npy`; a second run with the same text
and vocab size loads them instead of training and encoding again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accounting.atomic import atomic_output
from accounting.errors import MissingFileError, UserError

TOKENS_NAME = "tokens.npy"
TOKENIZER_DIR = "tokenizer"
DEFAULT_CACHE = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "lm-accounting" / "experiments")


@dataclass(frozen=True)
class Corpus:
    """Token ids (1-D, uint16/uint32) and where they came from. `vocab_size`: the tokenizer's."""

    tokens: npt.NDArray
    vocab_size: int
    source: str
    text_bytes: int | None
    sha256: str | None
    cache: str | None

    def describe(self) -> dict[str, Any]:
        """The summary's `corpus` block (no ids; the cache entry by name, not this machine's path)."""
        return {"source": self.source, "text_bytes": self.text_bytes, "tokens": int(len(self.tokens)),
                "vocab_size": self.vocab_size, "sha256_16": self.sha256,
                "cache_entry": Path(self.cache).name if self.cache else None,
                "bytes_per_token": round(self.text_bytes / len(self.tokens), 4) if self.text_bytes else None}


def prepare_corpus(vocab_size: int, *, corpus: str | os.PathLike[str] | None = None,
                   tokens: str | os.PathLike[str] | None = None, max_bytes: int | None = None,
                   cache_dir: str | os.PathLike[str] = DEFAULT_CACHE, progress: bool = False) -> Corpus:
    """Token ids for the experiments (see the module docstring). `max_bytes` cuts the text."""
    if tokens is not None:
        return _pretokenized(tokens)
    if corpus is None:
        from tokenizer.corpus import stdlib_corpus_text

        text, source = stdlib_corpus_text(max_bytes), "python stdlib docs (tokenizer.corpus)"
    else:
        path = Path(corpus)
        if not path.is_file():
            raise MissingFileError(f"corpus not found: {path}")
        data = path.read_bytes()[:max_bytes] if max_bytes is not None else path.read_bytes()
        text, source = data.decode("utf-8", errors="strict"), str(path)
    raw = text.encode("utf-8")
    if not raw:
        raise UserError("the corpus is empty: nothing to train on")
    digest = hashlib.sha256(raw).hexdigest()[:16]
    entry = Path(cache_dir) / f"{digest}-v{vocab_size}"
    ids = _cached(entry)
    if ids is None:
        ids = _tokenize(text, vocab_size, entry, progress)
    return Corpus(ids, _vocab_of(entry), source, len(raw), digest, str(entry))


def _pretokenized(path: str | os.PathLike[str]) -> Corpus:
    from model.data import load_tokens

    ids = load_tokens(path)
    return Corpus(ids, int(np.max(ids)) + 1, str(path), None, None, None)


def _cached(entry: Path) -> npt.NDArray | None:
    if not (entry / TOKENS_NAME).is_file() or not (entry / TOKENIZER_DIR / "vocab.json").is_file():
        return None
    return np.load(entry / TOKENS_NAME, mmap_mode="r")


def _vocab_of(entry: Path) -> int:
    from tokenizer import Tokenizer

    return Tokenizer.from_dir(entry / TOKENIZER_DIR).vocab_size


def _tokenize(text: str, vocab_size: int, entry: Path, progress: bool) -> npt.NDArray:
    """Train BPE on `text`, encode it, save tokenizer then ids (ids last: they mark a full entry)."""
    from tokenizer import DOCUMENT_SEPARATOR, Tokenizer, ids_dtype, train_bpe_from_text

    vocab, merges = train_bpe_from_text(text, vocab_size, [DOCUMENT_SEPARATOR], progress=progress)
    tok = Tokenizer(vocab, merges, [DOCUMENT_SEPARATOR])
    ids = np.asarray(tok.encode(text), dtype=ids_dtype(tok.vocab_size))
    tok.save(entry / TOKENIZER_DIR)
    with atomic_output(entry / TOKENS_NAME) as tmp, open(tmp, "wb") as f:
        np.save(f, ids)
    return ids
