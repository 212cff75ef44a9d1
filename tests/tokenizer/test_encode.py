"""Encoding and decoding, checked against tiktoken (built offline from GPT-2's files) and round trips."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizer import Tokenizer, UnknownTokenIdError, bpe, merge
from tokenizer.merge import merge_long, merge_short
from tokenizer.pretokenize import REFERENCE_PATTERN, pretokens

EOT = "<|endoftext|>"
FIXTURES = ["corpus.en", "tinystories_sample.txt", "address.txt", "german.txt",
            "special_token_trailing_newlines.txt", "special_token_double_newlines_non_whitespace.txt"]

# text of valid Unicode scalar values (lone surrogates cannot be UTF-8 encoded at all)
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)))
# fragments that stress pre-token and special-token boundaries
tricky = st.sampled_from([EOT, "<|", "endoftext", "|>", "<|endoftext", "'s", "'ll", "'", " ", "  ", "\n",
                          "\n\n", "\t", "\u00a0", "\u3000", "é", "1234", "abc", " x", "!!", "😀", "\x1c"])
mixed_text = st.lists(st.one_of(tricky, unicode_text, st.text("ab 'sl\n<|>")), max_size=12).map("".join)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_files_match_tiktoken(name, shared_data, gpt2_tokenizer, tiktoken_gpt2):
    text = (shared_data / name).read_text(encoding="utf-8")
    ids = gpt2_tokenizer.encode(text)
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2_tokenizer.decode(ids) == text


@settings(max_examples=300, deadline=None)
@given(mixed_text)
def test_random_text_matches_tiktoken(gpt2_tokenizer, tiktoken_gpt2, text):
    assert gpt2_tokenizer.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")


@settings(max_examples=200, deadline=None)
@given(mixed_text)
def test_fast_paths_agree_with_regex_package(text):
    ascii_text = text.encode("ascii", errors="ignore").decode()
    assert pretokens(ascii_text) == REFERENCE_PATTERN.findall(ascii_text)
    assert pretokens(text) == REFERENCE_PATTERN.findall(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", ".", "\n", " ", "é", "\u00a0", "'", "s", "1", "\t", "\u2028"]),
                max_size=30).map("".join))
def test_line_cuts_in_non_ascii_text_agree_with_regex_package(text):
    assert pretokens(text) == REFERENCE_PATTERN.findall(text)


@settings(max_examples=200, deadline=None)
@given(unicode_text)
def test_decode_inverts_encode(gpt2_tokenizer, text):
    assert gpt2_tokenizer.decode(gpt2_tokenizer.encode(text)) == text


@settings(max_examples=250, deadline=None)
@given(mixed_text, st.lists(st.integers(0, 60), max_size=20))
def test_encode_iterable_equals_encode_for_any_chunking(gpt2_tokenizer, text, cuts):
    positions = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *positions], [*positions, len(text)])]
    expected = gpt2_tokenizer.encode(text)
    assert list(gpt2_tokenizer.encode_iterable(iter(chunks))) == expected
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bpe, "_STREAM_BLOCK", 1)  # encode a prefix after every chunk: the carry-over path
        assert list(gpt2_tokenizer.encode_iterable(iter(chunks))) == expected
        two_specials = _byte_tokenizer([EOT, EOT + EOT])
        assert list(two_specials.encode_iterable(iter(chunks))) == two_specials.encode(text)


def test_encode_iterable_streams_long_text_in_small_chunks(shared_data, gpt2_tokenizer):
    # longer than the 64 Ki-character block, so the carry-over path runs many times
    text = (shared_data / "tinystories_sample.txt").read_text(encoding="utf-8") * 16
    text += (shared_data / "german.txt").read_text(encoding="utf-8") * 20
    rng = random.Random(0)
    chunks, pos = [], 0
    while pos < len(text):
        step = rng.randint(1, 5000)
        chunks.append(text[pos:pos + step])
        pos += step
    assert len(text) > 70_000
    assert list(gpt2_tokenizer.encode_iterable(chunks)) == gpt2_tokenizer.encode(text)


def _byte_tokenizer(specials):
    vocab = {i: bytes([i]) for i in range(256)}
    return Tokenizer(vocab, [], specials)


def test_overlapping_special_tokens_match_longest_first():
    tok = _byte_tokenizer([EOT, EOT + EOT])
    single, double = tok.encode(EOT), tok.encode(EOT + EOT)
    assert len(single) == 1 and len(double) == 1 and single != double
    assert tok.encode(EOT * 3) == double + single
    assert tok.decode(tok.encode("a" + EOT * 2 + "b")) == "a" + EOT * 2 + "b"
    # the same holds when the specials arrive one character at a time
    assert list(tok.encode_iterable(iter("x" + EOT * 3))) == tok.encode("x" + EOT * 3)


def test_special_tokens_get_new_ids_when_absent():
    tok = _byte_tokenizer(["<s>"])
    assert tok.encode("<s>") == [256]
    assert tok.vocab_size == 257
    # unregistered, the same text is plain bytes
    assert _byte_tokenizer(None).encode("<s>") == [60, 115, 62]


def test_decode_rejects_ids_outside_the_vocabulary(gpt2_tokenizer):
    for bad in ([50257], [-1], [0, 10**9]):
        with pytest.raises(UnknownTokenIdError):
            gpt2_tokenizer.decode(bad)


def test_decode_replaces_invalid_utf8_once(gpt2_tokenizer):
    by_bytes = {raw: i for i, raw in gpt2_tokenizer.vocab.items()}
    # 0xE2 0x82 starts "€" (E2 82 AC) but stops short: one U+FFFD for the truncated sequence
    ids = [by_bytes[b"\xe2"], by_bytes[b"\x82"], by_bytes[b"A"]]
    assert gpt2_tokenizer.decode(ids) == "\ufffdA"
    assert gpt2_tokenizer.decode([*ids[:2], by_bytes[b"\xac"]]) == "€"


def _naive_encode(tok: Tokenizer, text: str) -> list[int]:
    """Apply every merge, in creation order, to every pre-token: slow, and BPE by definition."""
    by_bytes = {raw: i for i, raw in sorted(tok.vocab.items(), reverse=True)}
    out = []
    for k, piece in enumerate(text.split(EOT)):
        if k:
            out.append(by_bytes[EOT.encode()])
        for word in REFERENCE_PATTERN.findall(piece):
            parts = [bytes([b]) for b in word.encode()]
            for a, b in tok.merges:
                i, merged = 0, []
                while i < len(parts):
                    if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                        merged.append(a + b)
                        i += 2
                    else:
                        merged.append(parts[i])
                        i += 1
                parts = merged
            out += [by_bytes[p] for p in parts]
    return out


@pytest.fixture(scope="module")
def small_trained(shared_data):
    from tokenizer import train_bpe

    vocab, merges = train_bpe(shared_data / "tinystories_sample.txt", 350, [EOT])
    return Tokenizer(vocab, merges, [EOT])


@settings(max_examples=60, deadline=None)
@given(mixed_text)
def test_trained_tokenizer_equals_naive_merge_order(small_trained, text):
    assert small_trained.encode(text) == _naive_encode(small_trained, text)


# ---- long pre-tokens: merge_long against tiktoken (150k characters) and against the definition,
# merge_short (quadratic, so on runs of a few thousand bytes) ----

def _random_run(alphabet: str, n: int) -> str:
    return "".join(random.Random(0).choices(alphabet, k=n))


LONG = 150_000
LONG_PRETOKENS = {  # each one pre-token (the last: one inside ordinary text)
    "spaces": " " * LONG, "newlines": "\n" * LONG, "mixed whitespace": _random_run(" \t\n\r\u3000\u00a0", LONG),
    "a word of a's": "a" * LONG, "a word of random letters": _random_run("abcdefghijklmnopqrstuvwxyz", LONG),
    "digits": _random_run("0123456789", LONG), "one digit": "7" * LONG, "é": "é" * LONG,
    "accented letters": _random_run("éèàüößçñ", LONG), "CJK": _random_run("日本語中文字", LONG),
    "punctuation": "-" * LONG, "inside text": "hello " + "ab" * (LONG // 2) + " world",
}


@pytest.mark.parametrize("kind", LONG_PRETOKENS)
def test_long_pretokens_match_tiktoken(kind, gpt2_tokenizer, tiktoken_gpt2):
    text = LONG_PRETOKENS[kind]
    assert gpt2_tokenizer.encode(text) == tiktoken_gpt2.encode(text)


def _tables(tok: Tokenizer):
    """merge.py's tables rebuilt from the public vocab and merges: (byte ids, ranks, merged ids)."""
    ids = {raw: i for i, raw in sorted(tok.vocab.items(), reverse=True)}
    ranks: dict[tuple[int, int], int] = {}
    for rank, (a, b) in enumerate(tok.merges):
        ranks.setdefault((ids[a], ids[b]), rank)
    return [ids[bytes([b])] for b in range(256)], ranks, [ids[a + b] for a, b in tok.merges]


runs = st.lists(st.tuples(st.sampled_from(["a", "b", "ab", " ", "\n", "7", "é", "the", "ing", "x"]),
                          st.integers(1, 400)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(runs, st.booleans())
def test_long_merge_equals_the_definition(gpt2_tokenizer, small_trained, parts, gpt2):
    # long runs of one piece (a*400), alternations and mixtures, up to a few thousand bytes
    raw = "".join(piece * count for piece, count in parts).encode()
    byte_ids, ranks, merged = _tables(gpt2_tokenizer if gpt2 else small_trained)
    ids = [byte_ids[b] for b in raw]
    assert merge_long(list(ids), ranks, merged) == merge_short(list(ids), ranks, merged)


@pytest.fixture(scope="module")
def uncached(shared_data, small_trained):
    """New copies of GPT-2's and the small trained tokenizer: nothing in their pre-token caches."""
    return (Tokenizer.from_gpt2_files(shared_data / "gpt2_vocab.json", shared_data / "gpt2_merges.txt", [EOT]),
            Tokenizer(small_trained.vocab, small_trained.merges, small_trained.special_tokens))


@settings(max_examples=100, deadline=None)
@given(mixed_text)
def test_long_path_on_every_pretoken(uncached, tiktoken_gpt2, text):
    gpt2, trained = uncached
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(merge, "LONG_PRETOKEN", 0)  # every pre-token takes merge_long
        patch.setattr(bpe, "_CACHE_MAX_CHARS", 0)  # and none is cached, so none skips it next time
        assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
        assert trained.encode(text) == _naive_encode(trained, text)


def test_whole_token_rule_agrees_with_merging(gpt2_tokenizer, small_trained):
    # encode takes a pre-token that is a token as that token (tiktoken's rule); for vocabularies made
    # by BPE training that is what merging gives too: every token's bytes merge back into it
    for tok in (gpt2_tokenizer, small_trained):
        byte_ids, ranks, merged = _tables(tok)
        for token_id in [*byte_ids, *merged]:
            raw = tok.vocab[token_id]
            assert merge_short([byte_ids[b] for b in raw], ranks, merged) == [token_id]


def test_a_pretoken_that_is_a_token_is_that_token():
    # the whole-token rule, where it differs from merging: (b, c) ranks first and no merge joins
    # a and bc, so merging b"abc" would give [a, bc]
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"bc", 257: b"ab", 258: b"abc"}
    tok = Tokenizer(vocab, [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")])
    assert tok.encode("abc") == [258]
    assert tok.encode("xabc") == [ord("x"), ord("a"), 256]  # not a token: merged


def test_merges_out_of_creation_order_follow_the_definition():
    # (ab, c) ranks before (a, b), which makes its part: merge_long's sweep would be wrong here, so
    # these 300-byte pre-tokens take the definition (quadratic in their length)
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"abc", 257: b"ab"}
    tok = Tokenizer(vocab, [(b"ab", b"c"), (b"a", b"b")])
    assert tok.encode("abc" * 100) == [256] * 100
    assert tok.encode("ab" * 100 + "c") == [257] * 99 + [256]
