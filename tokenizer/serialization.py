"""Tokenizer files. Every token is written in GPT-2's byte-to-unicode string form, which round-trips
every byte sequence and contains no space, so merges.txt holds one `left right` pair per line.

A saved tokenizer directory holds:
  - vocab.json:          {"<id>": "<GPT-2 string>"} in id order (the project's own format: keyed by
                         id, so two ids may share bytes)
  - merges.txt:          one merge per line, creation order, GPT-2 form (as GPT-2's merges.txt)
  - special_tokens.json: the special tokens as a JSON list of plain strings
GPT-2's published vocab.json is the inverse mapping, {"<GPT-2 string>": id}; `read_gpt2_vocab` reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from accounting.errors import MissingFileError
from accounting.atomic import atomic_write_text
from tokenizer.errors import TokenizerFileError
from tokenizer.gpt2_bytes import bytes_to_unicode_str, unicode_str_to_bytes

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
SPECIALS_FILE = "special_tokens.json"


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{what} file not found: {file}")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerFileError(f"{what} file {file} is not UTF-8 (byte offset {exc.start})") from None


def _read_json(path: str | os.PathLike[str], what: str) -> object:
    try:
        return json.loads(_read_text(path, what))
    except json.JSONDecodeError as exc:
        raise TokenizerFileError(f"{what} file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None


def read_vocab(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """The project's vocab.json: {"id": GPT-2 string}."""
    data = _read_json(path, "vocab")
    if not isinstance(data, dict):
        raise TokenizerFileError(f"vocab file {path} must hold a JSON object of id -> token")
    vocab: dict[int, bytes] = {}
    for key, token in data.items():
        if not (isinstance(key, str) and key.isdigit() and isinstance(token, str)):
            raise TokenizerFileError(f"vocab file {path}: entry {key!r}: {token!r} is not \"id\": \"token\"")
        vocab[int(key)] = unicode_str_to_bytes(token)
    return vocab


def read_gpt2_vocab(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """GPT-2's vocab.json: {GPT-2 string: id}."""
    data = _read_json(path, "vocab")
    if not isinstance(data, dict):
        raise TokenizerFileError(f"vocab file {path} must hold a JSON object of token -> id")
    vocab: dict[int, bytes] = {}
    for token, index in data.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise TokenizerFileError(f"vocab file {path}: token {token!r} has id {index!r}, not a non-negative integer")
        vocab[index] = unicode_str_to_bytes(token)
    return vocab


def read_merges(path: str | os.PathLike[str]) -> list[tuple[bytes, bytes]]:
    """merges.txt: `left right` per line in GPT-2 form; blank lines and a `#version` header skipped."""
    merges: list[tuple[bytes, bytes]] = []
    for number, line in enumerate(_read_text(path, "merges").splitlines(), start=1):
        if not line.strip() or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerFileError(f"merges file {path}, line {number}: expected two tokens, got {line!r}")
        merges.append((unicode_str_to_bytes(parts[0]), unicode_str_to_bytes(parts[1])))
    return merges


def read_special_tokens(path: str | os.PathLike[str]) -> list[str]:
    data = _read_json(path, "special tokens")
    if not isinstance(data, list) or not all(isinstance(s, str) and s for s in data):
        raise TokenizerFileError(f"special tokens file {path} must hold a JSON list of non-empty strings")
    return data


def save_dir(directory: str | os.PathLike[str], vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
             special_tokens: list[str]) -> None:
    """Write the three files into `directory` (created if needed), each atomically."""
    out = Path(directory)
    vocab_json = {str(i): bytes_to_unicode_str(vocab[i]) for i in sorted(vocab)}
    merges_txt = "".join(f"{bytes_to_unicode_str(a)} {bytes_to_unicode_str(b)}\n" for a, b in merges)
    atomic_write_text(out / VOCAB_FILE, json.dumps(vocab_json, ensure_ascii=False, indent=0) + "\n")
    atomic_write_text(out / MERGES_FILE, merges_txt)
    atomic_write_text(out / SPECIALS_FILE, json.dumps(special_tokens, ensure_ascii=False) + "\n")


def load_dir(directory: str | os.PathLike[str]) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], list[str]]:
    """(vocab, merges, special tokens) from a directory written by `save_dir`."""
    root = Path(directory)
    if not root.is_dir():
        raise MissingFileError(f"tokenizer directory not found: {root}")
    specials_path = root / SPECIALS_FILE
    specials = read_special_tokens(specials_path) if specials_path.exists() else []
    return read_vocab(root / VOCAB_FILE), read_merges(root / MERGES_FILE), specials
