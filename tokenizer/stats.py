"""How well and how fast a tokenizer compresses a text: the numbers the validation and the app show.

Compression ratio is UTF-8 bytes per token over the sampled documents (documents are the pieces
between "<|endoftext|>"). Throughput is UTF-8 bytes encoded per wall-clock second, single process,
measured on a fresh cache (the first pass over the sample, so every distinct word is merged once).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from tokenizer.bpe import Tokenizer
from tokenizer.corpus import DOCUMENT_SEPARATOR
from tokenizer.errors import CorpusError


@dataclass(frozen=True)
class TokenizerStats:
    """Sizes in bytes, counts in tokens/documents/characters, time in seconds."""

    n_documents: int
    n_chars: int
    n_tokens: int
    utf8_bytes: int
    utf16_bytes: int
    utf32_bytes: int
    seconds: float

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes per token (the compression ratio)."""
        return self.utf8_bytes / self.n_tokens if self.n_tokens else float("nan")

    @property
    def bytes_per_second(self) -> float:
        """UTF-8 bytes encoded per second."""
        return self.utf8_bytes / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else float("inf")


def sample_documents(text: str, max_documents: int | None = None, seed: int = 0) -> list[str]:
    """The non-empty documents of `text`, or `max_documents` of them drawn at random (in file order)."""
    documents = [d for d in text.split(DOCUMENT_SEPARATOR) if d]
    if max_documents is not None and len(documents) > max_documents:
        keep = sorted(random.Random(seed).sample(range(len(documents)), max_documents))
        documents = [documents[i] for i in keep]
    return documents


def tokenizer_stats(tokenizer: Tokenizer, text: str, max_documents: int | None = None,
                    seed: int = 0) -> TokenizerStats:
    """Encode the (sampled) documents of `text` once, timed; sizes of the same text in UTF-8/16/32.

    CorpusError if the text holds no document.
    """
    documents = sample_documents(text, max_documents, seed)
    if not documents:
        raise CorpusError("the text holds no document to measure")
    n_tokens = 0
    start = time.perf_counter()
    for document in documents:
        n_tokens += len(tokenizer.encode(document))
    seconds = time.perf_counter() - start
    return TokenizerStats(
        n_documents=len(documents),
        n_chars=sum(len(d) for d in documents),
        n_tokens=n_tokens,
        utf8_bytes=sum(len(d.encode("utf-8")) for d in documents),
        utf16_bytes=sum(len(d.encode("utf-16-le")) for d in documents),
        utf32_bytes=sum(len(d.encode("utf-32-le")) for d in documents),
        seconds=seconds,
    )
