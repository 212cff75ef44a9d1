"""GPT-2's reversible byte <-> printable-character map (the form of its vocab.json / merges.txt).

Bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` map to the character with the same code point; the other 68
bytes map to U+0100, U+0101, ... in increasing byte order. A token's bytes become a string with no
spaces or control characters, so `merges.txt` can hold one `a b` pair per line.
"""

from __future__ import annotations

import functools

from tokenizer.errors import TokenizerFileError


@functools.lru_cache(maxsize=1)
def byte_to_char() -> tuple[str, ...]:
    """`byte_to_char()[b]` is the printable character standing for byte b (0..255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table: list[str] = [""] * 256
    for b in printable:
        table[b] = chr(b)
    extra = 0
    for b in range(256):
        if not table[b]:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table)


@functools.lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {ch: b for b, ch in enumerate(byte_to_char())}


def bytes_to_unicode_str(token: bytes) -> str:
    """Bytes -> GPT-2 string form, e.g. b" the" -> "Ġthe"."""
    table = byte_to_char()
    return "".join(table[b] for b in token)


def unicode_str_to_bytes(text: str) -> bytes:
    """GPT-2 string form -> bytes; a character outside the map raises TokenizerFileError."""
    table = char_to_byte()
    try:
        return bytes(table[ch] for ch in text)
    except KeyError as exc:
        raise TokenizerFileError(f"character {exc.args[0]!r} is not in GPT-2's byte-to-unicode map") from None
