"""A long pre-token during BPE training: merging a pair in it costs O(the pair's occurrences), not
O(the word's length), so one huge pre-token (a megabyte of spaces) trains in near-linear time.

Merges follow the short-word rule of tokenizer.train: the occurrences of (a, b) are replaced left to
right, none overlapping (in "aaa", (a, a) merges the first two). Symbols form a linked list and are
named by the position of their first byte; a symbol merged into its left neighbour gets id -1.
"""

from __future__ import annotations

Pair = tuple[int, int]


class LongWord:
    """One pre-token's token ids, its neighbour links, and where each pair starts."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        n = len(ids)
        self.next_ = list(range(1, n + 1))
        self.prev = list(range(-1, n - 1))
        # pair -> symbols that started it when it was filed (some may have changed since: stale)
        self.starts: dict[Pair, list[int]] = {}
        for i, pair in enumerate(zip(ids, ids[1:])):
            self.starts.setdefault(pair, []).append(i)

    def merge(self, a: int, b: int, new: int) -> dict[Pair, int]:
        """Replace each (a, b) by `new`, left to right; return the change of each pair's count."""
        ids, next_, prev, starts = self.ids, self.next_, self.prev, self.starts
        n = len(ids)
        change: dict[Pair, int] = {}
        merged = 0
        for i in sorted(starts.pop((a, b), ())):
            j = next_[i]
            if ids[i] != a or j == n or ids[j] != b:
                continue  # stale, or overlapping the occurrence just merged
            merged += 1
            h, k = prev[i], next_[j]
            if h >= 0:  # (left, a) becomes (left, new)
                left = ids[h]
                change[left, a] = change.get((left, a), 0) - 1
                change[left, new] = change.get((left, new), 0) + 1
                starts.setdefault((left, new), []).append(h)
            if k < n:  # (b, right) becomes (new, right)
                right = ids[k]
                change[b, right] = change.get((b, right), 0) - 1
                change[new, right] = change.get((new, right), 0) + 1
                starts.setdefault((new, right), []).append(i)
                prev[k] = i
            ids[i], ids[j], next_[i] = new, -1, k
        change[a, b] = change.get((a, b), 0) - merged
        return change
