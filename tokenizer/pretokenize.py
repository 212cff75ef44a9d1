"""Pre-tokenization: split on special tokens, then cut each piece with GPT-2's regex.

The reference pattern (`GPT2_PATTERN`, the `regex` package, Unicode classes) is exact but slow;
pure-ASCII pieces take an equivalent stdlib `re` pattern with explicit ASCII classes (about 1.7x
faster). They agree on ASCII text because `regex`'s `\\s` is Unicode White_Space, whose ASCII members
are exactly tab, LF, VT, FF, CR and space (not \\x1c-\\x1f, which stdlib `re` would add).
Non-ASCII pieces are cut at lines that are safe boundaries, so only the lines around non-ASCII
characters need the reference pattern.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

import regex

from tokenizer.errors import TokenizerError

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenizer regex (the `regex` package's syntax)."""

_WS = r"\t\n\v\f\r "
_ASCII_PATTERN = re.compile(
    rf"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]++| ?[0-9]++| ?[^{_WS}A-Za-z0-9]++|[{_WS}]+(?![^{_WS}])|[{_WS}]++"""
)
REFERENCE_PATTERN = regex.compile(GPT2_PATTERN)
"""The pattern compiled by the `regex` package: the reference, used for every non-ASCII piece.

(Spelling its Unicode classes out as ranges for stdlib `re` was tried: 3x slower, since `re` checks
ranges beyond U+FFFF one by one.)"""


# A newline after a printable ASCII non-space (! to ~) is a boundary in every context: no alternative
# matches a non-space then a space, and the match after it starts afresh, looking only forward.
# Cutting non-ASCII text there lets all but the lines around non-ASCII characters take the fast pattern.
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _is_cut(text: str, p: int) -> bool:
    return "!" <= text[p - 1] <= "~"


def _cut_before(text: str, i: int, lo: int) -> int:
    """The last safe cut in (lo, i], or lo."""
    p = text.rfind("\n", lo + 1, i + 1)
    while p > lo and not _is_cut(text, p):
        p = text.rfind("\n", lo + 1, p)
    return max(p, lo)


def _cut_after(text: str, j: int) -> int:
    """The first safe cut at or after j (j > 0), or len(text)."""
    p = text.find("\n", j)
    while p != -1 and not _is_cut(text, p):
        p = text.find("\n", p + 1)
    return len(text) if p == -1 else p


def _segments(text: str) -> Iterator[tuple[str, re.Pattern[str] | regex.Pattern[str]]]:
    """(segment, pattern) pairs covering `text` in order; pre-tokens never cross a segment edge."""
    pos = 0
    for match in _NON_ASCII.finditer(text):
        if match.start() < pos:
            continue  # inside the previous non-ASCII segment
        start, end = _cut_before(text, match.start(), pos), _cut_after(text, match.end())
        if start > pos:
            yield text[pos:start], _ASCII_PATTERN
        yield text[start:end], REFERENCE_PATTERN
        pos = end
    if pos < len(text):
        yield text[pos:], _ASCII_PATTERN


def pretokens(text: str) -> list[str]:
    """GPT-2 pre-tokens of `text` (no special-token handling), in order; they concatenate to `text`."""
    if text.isascii():
        return _ASCII_PATTERN.findall(text)
    out: list[str] = []
    for segment, pattern in _segments(text):
        out += pattern.findall(segment)
    return out


def pretoken_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) character offsets of the pre-tokens of `text`."""
    offset = 0
    for segment, pattern in _segments(text):
        for match in pattern.finditer(segment):
            start, end = match.span()
            yield offset + start, offset + end
        offset += len(segment)


def unique_special_tokens(special_tokens: Sequence[str] | None) -> list[str]:
    """The special tokens in first-seen order without repeats; TokenizerError for an empty one
    (it would match between every two characters)."""
    specials = list(dict.fromkeys(special_tokens or ()))
    if "" in specials:
        raise TokenizerError(f"special tokens must be non-empty strings, got {specials!r}")
    return specials


def special_pattern(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    """One alternation of the special tokens, longest first (so overlapping specials match whole)."""
    if not special_tokens:
        return None
    ordered = sorted(set(special_tokens), key=lambda s: (-len(s), s))
    return re.compile("|".join(re.escape(s) for s in ordered))


def split_on_specials(text: str, pattern: re.Pattern[str] | None) -> list[str]:
    """Alternating [ordinary, special, ordinary, ...] pieces (ordinary pieces may be empty)."""
    if pattern is None:
        return [text]
    pieces: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        pieces.append(text[pos:match.start()])
        pieces.append(match.group())
        pos = match.end()
    pieces.append(text[pos:])
    return pieces


def count_pretokens(text: str, special_tokens: Sequence[str]) -> Counter[str]:
    """How often each pre-token occurs; special tokens are removed (nothing spans them)."""
    counts: Counter[str] = Counter()
    for piece in split_on_specials(text, special_pattern(special_tokens))[::2]:
        if piece:
            counts.update(pretokens(piece))
    return counts
