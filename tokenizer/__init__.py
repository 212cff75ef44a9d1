"""Byte-level BPE tokenizer (CS336 assignment 1) and the default stdlib-docs training corpus."""

from tokenizer.corpus import DOCUMENT_SEPARATOR, stdlib_corpus_text, write_stdlib_corpus

__all__ = ["DOCUMENT_SEPARATOR", "stdlib_corpus_text", "write_stdlib_corpus"]
