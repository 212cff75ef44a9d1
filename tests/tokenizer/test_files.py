"""Tokenizer files: byte map, save/load round trip, malformed files, .npy encoding, the CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizer import (CorpusError, Tokenizer, TokenizerError, TokenizerFileError, encode_file, ids_dtype,
                       train_bpe, train_bpe_from_text)
import tokenizer.chunking as chunking
from tokenizer.cli import main
from tokenizer.encode_file import iter_utf8_text
from tokenizer.gpt2_bytes import byte_to_char, bytes_to_unicode_str, unicode_str_to_bytes

EOT = "<|endoftext|>"


def test_byte_map_matches_gpt2_definition():
    table = byte_to_char()
    assert len(set(table)) == 256
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"  # GPT-2's "Ġthe"
    assert table[0] == "\u0100" and table[255] == "ÿ" and table[173] == "\u0143"  # 173 is the 68th remapped byte
    assert all(not ch.isspace() for ch in table)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_byte_strings_round_trip(raw):
    assert unicode_str_to_bytes(bytes_to_unicode_str(raw)) == raw


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=20))
def test_save_load_round_trip_for_any_tokens(tokens):
    # a vocabulary of arbitrary byte strings (duplicates included) and merges between them
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    for raw in tokens:
        if len(raw) > 1:
            merges.append((raw[:1], raw[1:2]))
            vocab[len(vocab)] = raw[:2]
    tok = Tokenizer(vocab, merges, [EOT, "\u00a0 x"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tok.save(out)
        back = Tokenizer.from_dir(out)
        assert back.vocab == tok.vocab and back.merges == tok.merges and back.special_tokens == tok.special_tokens
        assert Tokenizer.from_files(out / "vocab.json", out / "merges.txt").vocab == tok.vocab


def test_gpt2_files_load_and_encode(shared_data, gpt2_tokenizer):
    assert gpt2_tokenizer.vocab_size == 50257
    assert gpt2_tokenizer.encode("Hello world") == [15496, 995]  # published GPT-2 ids


def test_malformed_files(tmp_path):
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    tok.save(tmp_path)
    (tmp_path / "merges.txt").write_text("a b c\n", encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="line 1"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "merges.txt").write_text("", encoding="utf-8")
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="JSON"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"0": "a"}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="single-byte"):
        Tokenizer.from_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_dir(tmp_path / "nope")
    byte_vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        Tokenizer(byte_vocab, [(b"a", b"b")])  # b"ab" has no id
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        Tokenizer({**byte_vocab, 256: b"abc"}, [(b"ab", b"c")])  # b"ab" has no id


def _small_tokenizer() -> Tokenizer:
    vocab, merges = train_bpe_from_text(("the cat sat on the mat. " * 20 + EOT) * 5, 300, [EOT])
    return Tokenizer(vocab, merges, [EOT])


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_file_writes_a_memmappable_npy(tmp_path, workers):
    tok = _small_tokenizer()
    text = ("Ünïcode cats sat. " * 50 + EOT) * 30
    corpus = tmp_path / "c.txt"
    corpus.write_text(text, encoding="utf-8")
    n = encode_file(tok, corpus, tmp_path / "ids.npy", workers=workers)
    ids = np.load(tmp_path / "ids.npy", mmap_mode="r")
    assert ids.dtype == np.uint16 and n == len(ids)
    assert ids.tolist() == tok.encode(text)
    assert ids_dtype(70_000) == np.uint32


def test_every_reader_reports_bad_utf8_alike(tmp_path, monkeypatch):
    # whole file, chunks of it (training), a stream of blocks and ranges in workers (encode_file)
    good = ("hello world " * 50 + EOT).encode() * 10
    path = tmp_path / "bad.txt"
    path.write_bytes(good + b"abc\xe9def" + good)
    message = f"{path} is not UTF-8: invalid byte 0xe9 at byte offset {len(good) + 3}"
    tok = _small_tokenizer()
    with pytest.raises(CorpusError) as whole:
        train_bpe(path, 300, [EOT])
    monkeypatch.setattr(chunking, "PARALLEL_MIN_BYTES", 0)
    with pytest.raises(CorpusError) as chunked:
        train_bpe(path, 300, [EOT])
    with pytest.raises(CorpusError) as streamed:
        list(iter_utf8_text(path, block=len(good) + 4))  # 0xe9 ends a block: the decoder holds it back
    with pytest.raises(CorpusError) as ranged:
        encode_file(tok, path, tmp_path / "ids.npy", workers=2)
    assert [str(e.value) for e in (whole, chunked, streamed, ranged)] == [message] * 4


def test_encode_file_bad_utf8_leaves_no_output(tmp_path):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"x" * 10 + b"\xff" + b"y")
    with pytest.raises(CorpusError, match="offset 10"):
        encode_file(_small_tokenizer(), corpus, tmp_path / "ids.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_cli_train_encode_stats(tmp_path, shared_data, capsys):
    out = tmp_path / "tok"
    assert main(["train", str(shared_data / "corpus.en"), "--vocab-size", "300", "--special-token", EOT,
                 "--out", str(out)]) == 0
    assert Tokenizer.from_dir(out).vocab_size == 300
    assert main(["encode", str(shared_data / "address.txt"), "--tokenizer", str(out),
                 "--out", str(tmp_path / "ids.npy")]) == 0
    assert np.load(tmp_path / "ids.npy").dtype == np.uint16
    assert main(["stats", str(shared_data / "address.txt"), "--tokenizer", str(out)]) == 0
    assert "bytes per token" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "MISSING", "--vocab-size", "300", "--out", "X"], "not found|No such file"),
    (["train", "EMPTY", "--vocab-size", "300", "--out", "X"], "empty"),
    (["train", "EMPTY", "--vocab-size", "-3", "--out", "X"], "positive"),
    (["train", "LATIN1", "--vocab-size", "300", "--out", "X"], "byte offset 1"),
    (["train", "LATIN1", "--vocab-size", "100", "--out", "X"], "vocab_size"),
    (["encode", "LATIN1", "--tokenizer", "NOTOK", "--out", "X"], "not found"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY").write_bytes(b"")
    (tmp_path / "LATIN1").write_bytes(b"a\xe9")
    argv = [str(tmp_path / a) if a in {"MISSING", "EMPTY", "LATIN1", "NOTOK", "X"} else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert __import__("re").search(message, err)
    assert not (tmp_path / "X").exists()


def test_empty_special_token_is_refused_where_it_enters(tmp_path, capsys):
    # an empty special token matches between every two characters: "ab" became [0, 98, 0, 99, 0]
    byte_vocab = {i: bytes([i]) for i in range(256)}
    for specials in ([""], [EOT, ""]):
        with pytest.raises(TokenizerError, match="non-empty"):
            Tokenizer(byte_vocab, [], specials)
    corpus = tmp_path / "c.txt"
    corpus.write_text("low lower newest widest", encoding="utf-8")
    with pytest.raises(TokenizerError, match="non-empty"):
        train_bpe(corpus, 300, [""])
    with pytest.raises(TokenizerError, match="non-empty"):
        train_bpe_from_text("low lower", 300, [EOT, ""])
    out = tmp_path / "tok"
    assert main(["train", str(corpus), "--vocab-size", "300", "--special-token", "", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--special-token: empty value" in err and "Traceback" not in err
    assert not out.exists()
