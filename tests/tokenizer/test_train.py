"""BPE training: the CS336 reference run, a slow obviously-correct twin, and bad input."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenizer.chunking as chunking
import tokenizer.train as train
from tokenizer import CorpusError, VocabSizeError, train_bpe, train_bpe_from_text
from tokenizer.gpt2_bytes import unicode_str_to_bytes
from tokenizer.long_word import LongWord
from tokenizer.pretokenize import REFERENCE_PATTERN

EOT = "<|endoftext|>"


def test_reference_merges_and_vocab(shared_data):
    vocab, merges = train_bpe(shared_data / "corpus.en", 500, [EOT])
    expected_merges = [tuple(unicode_str_to_bytes(part) for part in line.split(" "))
                       for line in (shared_data / "train-bpe-reference-merges.txt").read_text("utf-8").splitlines()
                       if line]
    expected_vocab = json.loads((shared_data / "train-bpe-reference-vocab.json").read_text("utf-8"))
    assert merges == expected_merges
    assert set(vocab.values()) == {unicode_str_to_bytes(token) for token in expected_vocab}
    assert len(vocab) == 500


def _naive_bpe(text: str, vocab_size: int, specials: list[str]) -> list[tuple[bytes, bytes]]:
    """Recount every pair from scratch at each step: slow and obviously right."""
    pieces = [text]
    for special in specials:
        pieces = [part for piece in pieces for part in piece.split(special)]
    words = Counter(tuple(bytes([b]) for b in w.encode()) for p in pieces for w in REFERENCE_PATTERN.findall(p))
    merges = []
    while 256 + len(specials) + len(merges) < vocab_size:
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        merged: Counter[tuple[bytes, ...]] = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["low", "lower", " newest", " widest", "aaa", "ab", " ", "\n", EOT, "é", "ü!",
                                 "'s", "12"]), min_size=1, max_size=40).map("".join),
       st.integers(256 + 1, 256 + 40))
def test_incremental_training_equals_naive_twin(text, vocab_size):
    if not text.replace(EOT, ""):
        return
    vocab, merges = train_bpe_from_text(text, vocab_size, [EOT])
    assert merges == _naive_bpe(text, vocab_size, [EOT])
    assert vocab[0] == EOT.encode() and vocab[1] == b"\x00" and vocab[256] == b"\xff"
    assert all(vocab[257 + i] == a + b for i, (a, b) in enumerate(merges))
    assert not any(EOT.encode() in token for i, token in vocab.items() if i > 0)


# runs of up to 150 repeats: pre-tokens of hundreds of bytes, past the LongWord threshold (64)
long_runs = st.lists(st.tuples(st.sampled_from(["a", "ab", " ", "\n", "low", "é", EOT, " x", "12"]),
                               st.integers(1, 150)),
                     min_size=1, max_size=8).map(lambda parts: "".join(piece * count for piece, count in parts))


@settings(max_examples=60, deadline=None)
@given(long_runs, st.integers(256 + 1, 256 + 40), st.booleans())
def test_long_words_train_like_the_naive_twin(text, vocab_size, every_word_long):
    if not text.replace(EOT, ""):
        return
    with pytest.MonkeyPatch.context() as patch:
        if every_word_long:
            patch.setattr(train, "_LONG_WORD", 1)  # every word of 2+ bytes takes the LongWord path
        _, merges = train_bpe_from_text(text, vocab_size, [EOT])
    assert merges == _naive_bpe(text, vocab_size, [EOT])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2]), min_size=2, max_size=200), st.data())
def test_long_word_merges_like_a_list_and_counts_exactly(ids, data):
    word, current = LongWord(list(ids)), list(ids)
    counts = Counter(zip(ids, ids[1:]))
    for new in range(100, 110):
        if len(current) < 2:
            break
        a, b = data.draw(st.sampled_from(list(zip(current, current[1:]))))
        counts.update(word.merge(a, b, new))
        current = train._merge_word(current, a, b, new)  # the rule for short words
        assert [i for i in word.ids if i != -1] == current
        assert {pair: n for pair, n in counts.items() if n} == Counter(zip(current, current[1:]))


def test_one_huge_pretoken_trains():
    # 2^18 a's in one pre-token: each merge doubles the run, down to one token
    _, merges = train_bpe_from_text("a" * 2**18, 256 + 20)
    assert merges == [(b"a" * 2**k, b"a" * 2**k) for k in range(18)]
    # 300k random letters, 200 merges: as a list the word was rescanned at every merge (minutes)
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300_000))
    _, merges = train_bpe_from_text(word + EOT + " hello world", 256 + 1 + 200, [EOT])
    counts = Counter(zip(word, word[1:]))
    first = max(counts, key=lambda pair: (counts[pair], pair))
    assert len(merges) == 200 and merges[0] == (first[0].encode(), first[1].encode())


def test_ties_go_to_the_greater_byte_pair():
    # "ab" and "cd" occur equally often; (b"c", b"d") > (b"a", b"b"), so it merges first
    _, merges = train_bpe_from_text("ab cd ab cd", 256 + 1)
    assert merges[0] == (b"c", b"d")


def test_workers_give_the_same_result(tmp_path, monkeypatch, shared_data):
    monkeypatch.setattr(chunking, "PARALLEL_MIN_BYTES", 0)  # force the pool on a small file
    path = tmp_path / "corpus.txt"
    path.write_text((shared_data / "tinystories_sample.txt").read_text("utf-8") * 2, encoding="utf-8")
    whole = train_bpe_from_text(path.read_text("utf-8"), 400, [EOT])  # one piece, no chunks
    assert len(chunking.chunk_boundaries(path, 8, EOT.encode())) > 3
    assert train_bpe(path, 400, [EOT], num_workers=2) == whole  # pool over chunks
    assert train_bpe(path, 400, [EOT], num_workers=1) == whole  # chunk by chunk in-process


def test_chunk_boundaries_sit_on_the_special_token(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes((("é" * 50 + EOT) * 40).encode())
    cuts = chunking.chunk_boundaries(path, 8, EOT.encode(), window=7)
    data = path.read_bytes()
    assert cuts[0] == 0 and cuts[-1] == len(data) and len(cuts) > 2
    assert all(data[c:].startswith(EOT.encode()) for c in cuts[1:-1])


def test_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        train_bpe(empty, 300, [EOT])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9 ok")
    with pytest.raises(CorpusError, match="byte offset 3"):
        train_bpe(latin1, 300, [EOT])
    with pytest.raises(VocabSizeError):
        train_bpe(latin1, 256, [EOT])  # 256 bytes + 1 special do not fit in 256
    with pytest.raises(FileNotFoundError):
        train_bpe(tmp_path / "missing.txt", 300, [EOT])
    only_special = tmp_path / "special.txt"
    only_special.write_text(EOT * 3, encoding="utf-8")
    with pytest.raises(CorpusError):
        train_bpe(only_special, 300, [EOT])
