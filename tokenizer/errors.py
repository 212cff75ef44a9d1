"""Errors of the tokenizer package: each a UserError (a ValueError), so CLIs report them in one
line (exit 2)."""

from __future__ import annotations

from accounting.errors import UserError


class TokenizerError(UserError):
    """Base class of the tokenizer's user-facing errors."""


class CorpusError(TokenizerError):
    """A training or encoding corpus that is empty or not UTF-8."""


class VocabSizeError(TokenizerError):
    """A vocab_size smaller than 256 byte tokens plus the special tokens."""


class TokenizerFileError(TokenizerError):
    """A vocab, merges or special-tokens file that is malformed."""


class UnknownTokenIdError(TokenizerError):
    """An id passed to decode that is not in the vocabulary."""
