"""The BPE tokenizer: encode text to ids with learned merges, decode ids back to text.

Encoding: split on special tokens (longest first), cut ordinary text into GPT-2 pre-tokens, and
apply merges inside each pre-token in rank order (rank = position in the merges list; see
tokenizer.merge). A pre-token whose bytes are a token (a byte or a merge's result) is that token
without merging, as in tiktoken; this agrees with merging for every vocabulary that BPE training
produced (tested on GPT-2's and ours), not for hand-made merge lists that never build a token from
its own bytes. A bounded cache maps pre-token -> ids, so a repeated word costs one dict lookup.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import reduce

from tokenizer.errors import TokenizerError, UnknownTokenIdError
from tokenizer.gc_pause import gc_paused
from tokenizer.merge import in_creation_order, merge_ids
from tokenizer.pretokenize import (pretoken_spans, pretokens, special_pattern, split_on_specials,
                                   unique_special_tokens)

_CACHE_LIMIT = 500_000
"""Cached pre-tokens before the cache is cleared (bounds memory on endless streams)."""

_CACHE_MAX_CHARS = 1 << 10
"""Longer pre-tokens are merged each time they occur rather than kept: they rarely repeat, and a
million-character key would stay in memory."""

_STREAM_BLOCK = 1 << 16
"""encode_iterable gathers at least this many characters before encoding a prefix of its buffer."""

_CONTRACTION_LOOKAHEAD = 3
"""A pre-token is final once 3 more characters follow it ("'ll" reads 3 characters ahead)."""


class Tokenizer:
    """Byte-level BPE tokenizer over `vocab` (id -> bytes) and `merges` (in creation order).

    Special tokens not already in the vocabulary get new ids after the largest one; an empty special
    token is a TokenizerError.
    """

    def __init__(self, vocab: dict[int, bytes], merges: Sequence[tuple[bytes, bytes]],
                 special_tokens: Sequence[str] | None = None) -> None:
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges: list[tuple[bytes, bytes]] = [tuple(m) for m in merges]  # type: ignore[misc]
        self.special_tokens: list[str] = unique_special_tokens(special_tokens)
        self._ids: dict[bytes, int] = {}
        for i in sorted(self.vocab, reverse=True):  # the smallest id wins for duplicated bytes
            self._ids[self.vocab[i]] = i
        self._special_ids: dict[str, int] = {}
        for special in self.special_tokens:
            raw = special.encode("utf-8")
            if raw not in self._ids:
                new_id = max(self.vocab, default=-1) + 1
                self.vocab[new_id] = raw
                self._ids[raw] = new_id
            self._special_ids[special] = self._ids[raw]
        self._check_bytes_present()
        self._byte_ids = [self._ids[bytes([b])] for b in range(256)]
        # the tables of tokenizer.merge: (left id, right id) -> rank (the first of duplicate merges
        # wins) and rank -> merged id
        self._ranks: dict[tuple[int, int], int] = {}
        self._merged = [self._ids[a + b] for a, b in self.merges]
        for rank, (a, b) in enumerate(self.merges):
            self._ranks.setdefault((self._ids[a], self._ids[b]), rank)
        self._creation_order = in_creation_order(self._ranks, self._merged)
        # what a pre-token can be without merging: a byte or a merge's result
        whole = [bytes([b]) for b in range(256)] + [a + b for a, b in self.merges]
        self._whole = {raw: self._ids[raw] for raw in whole}
        self._special_re = special_pattern(self.special_tokens)
        self._max_special = max((len(s) for s in self.special_tokens), default=0)
        self._cache = _PretokenCache(self._encode_pretoken)
        size = max(self.vocab, default=-1) + 1
        self._decode_table: list[bytes | None] = [None] * size
        for i, raw in self.vocab.items():
            self._decode_table[i] = raw

    def _check_bytes_present(self) -> None:
        missing = [b for b in range(256) if bytes([b]) not in self._ids]
        if missing:
            raise TokenizerError(f"the vocabulary lacks {len(missing)} single-byte token(s), e.g. byte {missing[0]}")
        if any(i < 0 for i in self.vocab):
            raise TokenizerError("token ids must be non-negative")
        for a, b in self.merges:
            for part in (a, b, a + b):
                if part not in self._ids:
                    raise TokenizerError(f"merge {a!r} + {b!r} needs {part!r}, which is not in the vocabulary")

    @property
    def vocab_size(self) -> int:
        """One more than the largest id (the size of an embedding table indexed by these ids)."""
        return len(self._decode_table)

    # ---- loading and saving (formats in tokenizer.serialization) ----
    @classmethod
    def from_files(cls, vocab_path: str | os.PathLike[str], merges_path: str | os.PathLike[str],
                   special_tokens: Sequence[str] | None = None) -> Tokenizer:
        """Load the project's own format (vocab.json: {"id": GPT-2 string}; merges.txt)."""
        from tokenizer.serialization import read_merges, read_vocab

        return cls(read_vocab(vocab_path), read_merges(merges_path), special_tokens)

    @classmethod
    def from_gpt2_files(cls, vocab_json: str | os.PathLike[str], merges_txt: str | os.PathLike[str],
                        special_tokens: Sequence[str] | None = None) -> Tokenizer:
        """Load GPT-2's published vocab.json ({GPT-2 string: id}) and merges.txt."""
        from tokenizer.serialization import read_gpt2_vocab, read_merges

        return cls(read_gpt2_vocab(vocab_json), read_merges(merges_txt), special_tokens)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> Tokenizer:
        """Load a directory written by `save`."""
        from tokenizer.serialization import load_dir

        vocab, merges, specials = load_dir(directory)
        return cls(vocab, merges, specials)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write vocab.json, merges.txt and special_tokens.json into `directory` (each atomically)."""
        from tokenizer.serialization import save_dir

        save_dir(directory, self.vocab, self.merges, self.special_tokens)

    # ---- encoding ----
    def _encode_pretoken(self, word: str) -> tuple[int, ...]:
        """The ids of one pre-token: itself if it is a token, else its bytes merged."""
        raw = word.encode("utf-8")
        whole = self._whole.get(raw)
        if whole is not None:
            return (whole,)
        ids = list(map(self._byte_ids.__getitem__, raw))
        return tuple(merge_ids(ids, self._ranks, self._merged, self._creation_order))

    def _extend(self, out: list[int], words: list[str]) -> list[int]:
        """Append the ids of `words` to `out`; return it."""
        # out += ids of each word, looped in C (reduce over iadd); the cache merges unseen words
        return reduce(operator.iadd, map(self._cache.__getitem__, words), out)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (special tokens, when registered, become their single id)."""
        with gc_paused():
            return self._encode(text)

    def _encode(self, text: str) -> list[int]:
        out: list[int] = []
        if self._special_re is None:
            return self._extend(out, pretokens(text))
        for k, piece in enumerate(split_on_specials(text, self._special_re)):
            if k % 2:
                out.append(self._special_ids[piece])
            elif piece:
                self._extend(out, pretokens(piece))
        return out

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily encode a stream of text chunks; the ids equal `encode("".join(iterable))`.

        Memory stays bounded by the block size plus the longest pre-token: only a tail that more
        text could still change (a partial special token, the last pre-tokens) is carried over.
        """
        buffer, threshold = "", _STREAM_BLOCK
        for chunk in iterable:
            buffer += chunk
            if len(buffer) >= threshold:
                with gc_paused():
                    ids, buffer = self._encode_prefix(buffer)
                # a tail that refuses to shrink (one huge pre-token) waits until it doubles
                threshold = max(_STREAM_BLOCK, 2 * len(buffer))
                yield from ids
        yield from self.encode(buffer)

    def _encode_prefix(self, text: str) -> tuple[list[int], str]:
        """Encode the part of `text` that no continuation can change; return (ids, the rest)."""
        out: list[int] = []
        pos = 0
        # a special match starting here or later might still grow or appear once more text comes
        special_limit = len(text) - self._max_special + 1 if self._special_re is not None else len(text) + 1
        if self._special_re is not None:
            for match in self._special_re.finditer(text):
                if match.start() >= special_limit:
                    break
                self._extend(out, pretokens(text[pos:match.start()]))
                out.append(self._special_ids[match.group()])
                pos = match.end()
        # ordinary text certainly runs to `limit`; keep pre-tokens that end early enough to be final
        limit = max(pos, min(len(text), special_limit))
        piece = text[pos:limit]
        cut = 0
        words: list[str] = []
        for start, end in pretoken_spans(piece):
            if end > len(piece) - _CONTRACTION_LOOKAHEAD:
                break
            words.append(piece[start:end])  # not re-split: "\n\n" cut from "\n\n<" is two pre-tokens
            cut = end
        return self._extend(out, words), text[pos + cut:]

    # ---- decoding ----
    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: their bytes joined, decoded once as UTF-8 (bad sequences become U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of `ids`; UnknownTokenIdError for an id outside the vocabulary."""
        ids = list(ids)
        table = self._decode_table
        try:
            if ids and min(ids) < 0:  # a negative index would silently wrap around
                raise IndexError
            return b"".join([table[i] for i in ids])  # type: ignore[misc]
        except (IndexError, TypeError):
            raise self._unknown_id(ids) from None

    def _unknown_id(self, ids: list[int]) -> UnknownTokenIdError:
        table = self._decode_table
        for i in ids:
            try:
                ok = not isinstance(i, bool) and 0 <= operator.index(i) < len(table) and table[i] is not None
            except TypeError:
                ok = False
            if not ok:
                return UnknownTokenIdError(f"token id {i!r} is not in the vocabulary (ids 0..{len(table) - 1})")
        return UnknownTokenIdError("a token id is not in the vocabulary")


class _PretokenCache(dict[str, tuple[int, ...]]):
    """pre-token -> its ids; a missing pre-token is encoded by `encode_pretoken` and kept."""

    def __init__(self, encode_pretoken: Callable[[str], tuple[int, ...]]) -> None:
        super().__init__()
        self._encode_pretoken = encode_pretoken

    def __missing__(self, word: str) -> tuple[int, ...]:
        ids = self._encode_pretoken(word)  # int-only tuples leave the GC's tracking
        if len(word) <= _CACHE_MAX_CHARS:
            if len(self) >= _CACHE_LIMIT:
                self.clear()
            self[word] = ids
        return ids
