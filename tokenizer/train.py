"""Byte-level BPE training (CS336 assignment 1 conventions).

Vocabulary ids: the special tokens first (0..k-1, in the order given), then the 256 byte values
(k..k+255), then one id per merge in creation order. `vocab_size` counts all three.

Each step merges the most frequent adjacent pair, counted over pre-tokens weighted by how often the
pre-token occurs; ties go to the lexicographically greater pair of byte strings, comparing
(left bytes, right bytes) tuples. Counts are updated incrementally: a pair -> words index says which
words a merge touches, and a heap with lazy invalidation finds the best pair. A word longer than 64
bytes is a LongWord (tokenizer.long_word), whose merges cost their occurrences, not its length.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat

from tokenizer.chunking import count_file_pretokens
from tokenizer.errors import CorpusError, VocabSizeError
from tokenizer.gc_pause import gc_paused
from tokenizer.long_word import LongWord
from tokenizer.pretokenize import count_pretokens, unique_special_tokens

Vocab = dict[int, bytes]
Merges = list[tuple[bytes, bytes]]

_LONG_WORD = 64
"""Words of more bytes are LongWords (a list would cost the word's length at every merge touching it)."""


@dataclass(frozen=True)
class TrainTimings:
    """Seconds spent in each phase of one training run."""

    pretokenize_seconds: float
    merge_seconds: float


def _desc_key(token: bytes) -> tuple[int, ...]:
    """A key whose ascending order is the descending lexicographic order of `token`.

    Complementing each byte reverses the order of differing bytes; the 256 terminator makes a
    proper prefix sort after its extensions (b"a" < b"ab", so b"a" must come later).
    """
    return (*(255 - b for b in token), 256)


class _PairCounter:
    """Words (lists of token ids, or LongWords), their pair counts, the pair -> words index, the max-heap."""

    def __init__(self, counts: Counter[str]) -> None:
        self.words: list[list[int] | LongWord] = []
        self.freqs: list[int] = []
        self.pair_counts: dict[tuple[int, int], int] = {}
        self.where: dict[tuple[int, int], set[int]] = {}
        for word, freq in counts.items():
            ids = list(word.encode("utf-8"))
            if len(ids) < 2:
                continue  # a single byte has no pair to merge
            i = len(self.words)
            if len(ids) > _LONG_WORD:
                self.words.append(LongWord(ids))
                pairs = Counter(zip(ids, ids[1:])).items()  # one update per distinct pair
            else:
                self.words.append(ids)
                pairs = zip(zip(ids, ids[1:]), repeat(1))
            self.freqs.append(freq)
            for pair, n in pairs:
                self.pair_counts[pair] = self.pair_counts.get(pair, 0) + n * freq
                self.where.setdefault(pair, set()).add(i)
        self.token_bytes: list[bytes] = [bytes([b]) for b in range(256)]
        self.keys: list[tuple[int, ...]] = [_desc_key(t) for t in self.token_bytes]
        keys = self.keys
        self.heap = [(-c, keys[a], keys[b], a, b) for (a, b), c in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def best_pair(self) -> tuple[int, int] | None:
        """Pop heap entries until one matches the live count (older entries are stale)."""
        heap, counts = self.heap, self.pair_counts
        while heap:
            neg, _, _, a, b = heapq.heappop(heap)
            if counts.get((a, b)) == -neg:
                return a, b
        return None

    def merge(self, a: int, b: int) -> int:
        """Replace every (a, b) by a new token; update counts, index and heap; return the new id."""
        new_id = len(self.token_bytes)
        self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.keys.append(_desc_key(self.token_bytes[new_id]))
        delta: dict[tuple[int, int], int] = {}
        words, freqs, where = self.words, self.freqs, self.where
        for i in where.pop((a, b), ()):
            old, freq = words[i], freqs[i]
            if isinstance(old, LongWord):
                for pair, change in old.merge(a, b, new_id).items():
                    delta[pair] = delta.get(pair, 0) + change * freq
                    if new_id in pair:
                        where.setdefault(pair, set()).add(i)
                continue
            new = _merge_word(old, a, b, new_id)
            if len(new) == len(old):
                continue  # stale index entry: the pair left this word in an earlier merge
            for pair in zip(old, old[1:]):
                delta[pair] = delta.get(pair, 0) - freq
            for pair in zip(new, new[1:]):
                delta[pair] = delta.get(pair, 0) + freq
                if new_id in pair:
                    where.setdefault(pair, set()).add(i)
            words[i] = new
        self._apply(delta)
        self.pair_counts.pop((a, b), None)
        return new_id

    def _apply(self, delta: dict[tuple[int, int], int]) -> None:
        counts, heap, keys = self.pair_counts, self.heap, self.keys
        for pair, change in delta.items():
            if not change:
                continue
            count = counts.get(pair, 0) + change
            if count > 0:
                counts[pair] = count
                heapq.heappush(heap, (-count, keys[pair[0]], keys[pair[1]], pair[0], pair[1]))
            else:
                counts.pop(pair, None)


def _merge_word(ids: list[int], a: int, b: int, new_id: int) -> list[int]:
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> int:
    """Number of merges to learn; VocabSizeError when vocab_size < 256 + number of specials."""
    floor = 256 + len(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < floor:
        raise VocabSizeError(
            f"vocab_size must be an integer >= 256 + {len(special_tokens)} special token(s) = {floor}, "
            f"got {vocab_size!r}"
        )
    return vocab_size - floor


def learn_merges(counts: Counter[str], num_merges: int,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[bytes, bytes]]:
    """The merges (in creation order) learned from pre-token counts; stops early if no pair is left."""
    with gc_paused():
        return _learn(_PairCounter(counts), num_merges, progress)


def _learn(state: _PairCounter, num_merges: int,
           progress: Callable[[int, int], None] | None) -> list[tuple[bytes, bytes]]:
    merges: list[tuple[bytes, bytes]] = []
    for step in range(num_merges):
        pair = state.best_pair()
        if pair is None:
            break
        merges.append((state.token_bytes[pair[0]], state.token_bytes[pair[1]]))
        state.merge(*pair)
        if progress:
            progress(step + 1, num_merges)
    return merges


def build_vocab(special_tokens: Sequence[str], merges: Merges) -> Vocab:
    """Specials, then the 256 bytes, then each merge's concatenation, numbered from 0."""
    tokens = [s.encode("utf-8") for s in special_tokens] + [bytes([b]) for b in range(256)]
    tokens += [a + b for a, b in merges]
    return dict(enumerate(tokens))


def _tqdm_progress(desc: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from tqdm.auto import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="merge" if "merge" in desc else "chunk", leave=False)
        bar.update(done - bar.n)

    return update, lambda: bar.close() if bar is not None else None


def train_bpe_from_counts(counts: Counter[str], vocab_size: int, special_tokens: Sequence[str],
                          progress: bool | Callable[[int, int], None] = False) -> tuple[Vocab, Merges]:
    """Train from pre-token counts (see `train_bpe`)."""
    specials = unique_special_tokens(special_tokens)
    num_merges = check_vocab_size(vocab_size, specials)
    if not counts:
        raise CorpusError("the corpus has no text outside the special tokens: nothing to train on")
    close: Callable[[], None] | None = None
    callback = progress if callable(progress) else None
    if progress is True:
        callback, close = _tqdm_progress("BPE merges")
    try:
        merges = learn_merges(counts, num_merges, callback)
    finally:
        if close:
            close()
    return build_vocab(specials, merges), merges


def train_bpe(input_path: str | os.PathLike[str], vocab_size: int, special_tokens: Sequence[str] = (),
              *, num_workers: int = 1, progress: bool | Callable[[int, int], None] = False,
              timings: list[TrainTimings] | None = None) -> tuple[Vocab, Merges]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file.

    Returns (vocab: id -> token bytes, merges: (left bytes, right bytes) in creation order).
    `num_workers` > 1 pre-tokenizes large files (>= 4 MiB) in a process pool over chunks cut at
    special tokens. `progress`: True shows tqdm bars; a callable gets (merges_done, merges_total).
    If `timings` is a list, a TrainTimings for this run is appended to it.
    Errors: FileNotFoundError; CorpusError (empty, not UTF-8); VocabSizeError; TokenizerError for an
    empty special token.
    """
    import time

    specials = unique_special_tokens(special_tokens)
    check_vocab_size(vocab_size, specials)  # fail before reading a large file
    start = time.perf_counter()
    chunk_progress, close = _tqdm_progress("pre-tokenize chunks") if progress is True else (None, None)
    try:
        counts = count_file_pretokens(input_path, specials, num_workers, chunk_progress)
    finally:
        if close:
            close()
    middle = time.perf_counter()
    result = train_bpe_from_counts(counts, vocab_size, specials, progress)
    if timings is not None:
        timings.append(TrainTimings(middle - start, time.perf_counter() - middle))
    return result


def train_bpe_from_text(text: str, vocab_size: int, special_tokens: Sequence[str] = (),
                        progress: bool | Callable[[int, int], None] = False) -> tuple[Vocab, Merges]:
    """`train_bpe` on an in-memory string (in-process pre-tokenization)."""
    if not text:
        raise CorpusError("the corpus is empty: nothing to train on")
    specials = unique_special_tokens(special_tokens)
    check_vocab_size(vocab_size, specials)
    return train_bpe_from_counts(count_pretokens(text, specials), vocab_size, specials, progress)
