"""Dataset arithmetic: tokens from bytes, on-disk token storage, tokenizing time, Chinchilla size.

Compression ratio = bytes of UTF-8 text per token (e.g. ~4 for GPT-2's BPE on English). Token ids
are stored as uint16 when every id fits (vocab_size <= 65,536), else uint32.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.errors import UserError

CHINCHILLA_TOKENS_PER_PARAM = 20
"""Hoffmann et al. 2022: compute-optimal training uses ~20 tokens per parameter."""


def token_dtype(vocab_size: int) -> str:
    """Smallest unsigned dtype holding ids 0..vocab_size-1: uint16 or uint32."""
    if vocab_size <= 0:
        raise UserError(f"vocab_size must be positive, got {vocab_size}")
    return "uint16" if vocab_size <= 2**16 else "uint32"


@dataclass(frozen=True)
class DatasetEstimate:
    """Token count, storage and tokenizing time of a text corpus."""

    text_bytes: int
    bytes_per_token: float
    tokens: int
    token_dtype: str
    storage_bytes: int
    tokenize_seconds: float | None


def dataset_estimate(text_bytes: int, bytes_per_token: float, vocab_size: int,
                     tokenizer_bytes_per_s: float | None = None) -> DatasetEstimate:
    """Tokens = round(bytes / ratio); storage = tokens x (2 or 4) bytes; time = bytes / throughput."""
    if text_bytes < 0 or not bytes_per_token > 0:
        raise UserError("text bytes must be >= 0 and the compression ratio positive")
    if tokenizer_bytes_per_s is not None and not tokenizer_bytes_per_s > 0:
        raise UserError(f"tokenizer throughput must be positive, got {tokenizer_bytes_per_s}")
    tokens = round(text_bytes / bytes_per_token)
    dtype = token_dtype(vocab_size)
    per_token = 2 if dtype == "uint16" else 4
    seconds = None if tokenizer_bytes_per_s is None else text_bytes / tokenizer_bytes_per_s
    return DatasetEstimate(text_bytes, bytes_per_token, tokens, dtype, tokens * per_token, seconds)


def chinchilla_tokens(parameters: int) -> int:
    """Compute-optimal training tokens: 20 per parameter."""
    return CHINCHILLA_TOKENS_PER_PARAM * parameters
