"""Byte-level BPE tokenizer (CS336 assignment 1): training, encoding, files, stats, default corpus.

    vocab, merges = train_bpe("corpus.txt", 10_000, ["<|endoftext|>"])
    tok = Tokenizer(vocab, merges, ["<|endoftext|>"]); ids = tok.encode("Hello"); tok.decode(ids)
"""

from tokenizer.bpe import Tokenizer
from tokenizer.corpus import DOCUMENT_SEPARATOR, stdlib_corpus_text, write_stdlib_corpus
from tokenizer.encode_file import encode_file, ids_dtype
from tokenizer.errors import (CorpusError, TokenizerError, TokenizerFileError, UnknownTokenIdError,
                              VocabSizeError)
from tokenizer.pretokenize import GPT2_PATTERN
from tokenizer.stats import TokenizerStats, tokenizer_stats
from tokenizer.train import TrainTimings, train_bpe, train_bpe_from_text

__all__ = [
    "DOCUMENT_SEPARATOR", "GPT2_PATTERN", "CorpusError", "Tokenizer", "TokenizerError", "TokenizerFileError",
    "TokenizerStats", "TrainTimings", "UnknownTokenIdError", "VocabSizeError", "encode_file", "ids_dtype",
    "stdlib_corpus_text", "tokenizer_stats", "train_bpe", "train_bpe_from_text", "write_stdlib_corpus",
]
