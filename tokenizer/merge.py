"""BPE merges inside one pre-token: from the ids of its bytes to its token ids.

Conventions: `ranks` maps a pair of adjacent ids to its merge's rank (its position in the merges
list; the first of duplicated merges wins) and `merged[rank]` is the id that merge creates. Each
step merges the lowest-ranked adjacent pair, the leftmost on ties, one occurrence at a time, until
no adjacent pair has a rank.

`merge_short` is that definition written directly: each step rescans the pairs, so a pre-token of n
bytes costs O(n^2). `merge_long` gives the same ids in O(n log n) when the merges are in creation
order (every merge ranks after each merge that makes one of its parts, as training writes them):
then merging a pair only creates pairs of later ranks, so all the pairs of one rank can be merged in
one left-to-right sweep, lowest rank first.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from heapq import heapify, heappop, heappush
from itertools import repeat

NO_RANK = sys.maxsize
"""The rank of a pair that no merge joins (after every real rank)."""

LONG_PRETOKEN = 64
"""Pre-tokens of more bytes take `merge_long` (measured: it overtakes `merge_short` at 48-64 bytes)."""

Ranks = dict[tuple[int, int], int]


def in_creation_order(ranks: Ranks, merged: Sequence[int]) -> bool:
    """Whether each merge ranks after every merge that creates one of its parts."""
    last_made: dict[int, int] = {}
    for rank in sorted(ranks.values()):
        last_made[merged[rank]] = rank
    return all(last_made.get(a, -1) < rank and last_made.get(b, -1) < rank for (a, b), rank in ranks.items())


def merge_ids(ids: list[int], ranks: Ranks, merged: Sequence[int], creation_order: bool) -> list[int]:
    """The token ids of one pre-token whose bytes have the ids `ids` (a list this call may change)."""
    if creation_order and len(ids) > LONG_PRETOKEN:
        return merge_long(ids, ranks, merged)
    return merge_short(ids, ranks, merged)


def merge_short(ids: list[int], ranks: Ranks, merged: Sequence[int]) -> list[int]:
    """Merge `ids` in place by the definition: lowest rank first, leftmost on ties."""
    rank_of = ranks.get
    # pair_ranks[i]: rank of the pair (ids[i], ids[i + 1])
    pair_ranks = list(map(rank_of, zip(ids, ids[1:]), repeat(NO_RANK)))
    while pair_ranks:
        rank = min(pair_ranks)
        if rank == NO_RANK:
            break
        i = pair_ranks.index(rank)
        new = ids[i] = merged[rank]
        del ids[i + 1], pair_ranks[i]
        # only the pairs touching the new token changed
        if i:
            pair_ranks[i - 1] = rank_of((ids[i - 1], new), NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = rank_of((new, ids[i + 1]), NO_RANK)
    return ids


def merge_long(ids: list[int], ranks: Ranks, merged: Sequence[int]) -> list[int]:
    """`merge_short`'s result in O(n log n), for merges in creation order (see the module docstring).

    Symbols are named by the position of their first byte and linked to their neighbours
    (next_, prev). `pair_rank[i]` is the rank of the pair that symbol i starts; `waiting[rank]`
    lists the symbols whose pair had that rank when it was filed (an entry whose pair has changed
    since is stale and skipped); `pending` is a heap of the ranks with a list in `waiting`.
    """
    rank_of = ranks.get
    n = len(ids)
    # arrays, not lists: the links of neighbours share a cache line, where a list points to scattered
    # int objects; when many ranks send the sweeps all over the word (random letters) this is 20%
    # faster, on a run of one byte 10% slower
    next_ = array("q", range(1, n + 1))
    prev = array("q", range(-1, n - 1))
    pair_rank = list(map(rank_of, zip(ids, ids[1:]), repeat(NO_RANK)))
    pair_rank.append(NO_RANK)
    waiting: dict[int, list[int]] = {}
    for i, rank in enumerate(pair_rank):
        if rank != NO_RANK:
            _file(waiting, rank, i)
    pending = list(waiting)
    heapify(pending)
    while pending:
        rank = heappop(pending)
        new = merged[rank]
        # left to right; in creation order no pair of this rank appears while they merge
        for i in sorted(waiting.pop(rank)):
            if pair_rank[i] != rank:
                continue  # stale: a neighbour merged first
            j = next_[i]  # absorbed into i
            k = next_[j]
            ids[i] = new
            pair_rank[j] = NO_RANK
            next_[i] = k
            if k < n:
                prev[k] = i
                later = pair_rank[i] = rank_of((new, ids[k]), NO_RANK)
                if later != NO_RANK and _file(waiting, later, i):
                    heappush(pending, later)
            else:
                pair_rank[i] = NO_RANK
            h = prev[i]
            if h >= 0:
                later = pair_rank[h] = rank_of((ids[h], new), NO_RANK)
                if later != NO_RANK and _file(waiting, later, h):
                    heappush(pending, later)
    out = []
    i = 0
    while i < n:
        out.append(ids[i])
        i = next_[i]
    return out


def _file(waiting: dict[int, list[int]], rank: int, i: int) -> bool:
    """Add symbol i to the list of `rank`; True if that list is new."""
    symbols = waiting.get(rank)
    if symbols is None:
        waiting[rank] = [i]
        return True
    symbols.append(i)
    return False
