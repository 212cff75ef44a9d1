"""Fixtures of the tokenizer tests: GPT-2's tokenizer loaded by us and, independently, by tiktoken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenizer import GPT2_PATTERN, Tokenizer

EOT = "<|endoftext|>"


def _tiktoken_byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-unicode map inverted, written out here from its definition (not our module)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = {b: chr(b) for b in keep}
    extra = [b for b in range(256) if b not in chars]
    chars.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return {c: b for b, c in chars.items()}


@pytest.fixture(scope="session")
def gpt2_tokenizer(shared_data: Path) -> Tokenizer:
    return Tokenizer.from_gpt2_files(shared_data / "gpt2_vocab.json", shared_data / "gpt2_merges.txt", [EOT])


@pytest.fixture(scope="session")
def tiktoken_gpt2(shared_data: Path):
    """tiktoken built offline from the same files (get_encoding would need the network)."""
    tiktoken = pytest.importorskip("tiktoken")
    decoder = _tiktoken_byte_decoder()
    vocab = json.loads((shared_data / "gpt2_vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(decoder[c] for c in token): rank for token, rank in vocab.items() if token != EOT}
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})
