"""Tokenizer: type or paste text, see its tokens coloured, their ids, bytes per token, and the
text's size in UTF-8 / UTF-16 / UTF-32 bytes (UTF-16 and UTF-32 without a byte-order mark)."""

from __future__ import annotations

import html

import streamlit as st

from explorer.state import Settings

SAMPLE = ("Hello, world! The tokenizer splits text into pre-tokens, then merges bytes.\n\tÜnïcödé 🙂 日本語."
          "<|endoftext|>A new document.")
_PALETTE = ("#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f0f7", "#fce1cf", "#e2f0cb")
DEFAULT_VOCAB = 1_000
DEFAULT_KB = 500


@st.cache_resource(show_spinner="Training a default BPE tokenizer on Python's documentation…")
def default_tokenizer():
    """A 1,000-token BPE tokenizer trained on the first 500 kB of the stdlib corpus (cached)."""
    from tokenizer import DOCUMENT_SEPARATOR, Tokenizer, stdlib_corpus_text, train_bpe_from_text

    text = stdlib_corpus_text().encode("utf-8")[: DEFAULT_KB * 1000].decode("utf-8", errors="ignore")
    vocab, merges = train_bpe_from_text(text, DEFAULT_VOCAB, [DOCUMENT_SEPARATOR])
    return Tokenizer(vocab, merges, [DOCUMENT_SEPARATOR])


def token_label(raw: bytes) -> tuple[str, bool]:
    """(display text, whole): a token that is not valid UTF-8 on its own (part of a multi-byte
    character) shows its bytes in hex, e.g. "⟨C3⟩"."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return "⟨" + " ".join(f"{b:02X}" for b in raw) + "⟩", False


def character_groups(pieces: list[bytes]) -> list[list[int]]:
    """Token indices grouped into the shortest runs whose bytes decode as whole UTF-8 characters:
    a token alone when it does, else the tokens that together spell a character split across
    them (an emoji or CJK character the vocabulary has no merge for)."""
    groups: list[list[int]] = []
    run: list[int] = []
    for i, raw in enumerate(pieces):
        run.append(i)
        try:
            b"".join(pieces[j] for j in run).decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and i + 1 < len(pieces):
                continue  # the character goes on in the next token
        groups.append(run)
        run = []
    return groups


def visible(text: str) -> str:
    """HTML of a token's text with whitespace made visible: space ·, tab →, newline ↵ (then a
    line break), other whitespace as its code point."""
    out = []
    for ch in text:
        if ch == " ":
            out.append('<span style="color:#999">·</span>')
        elif ch == "\t":
            out.append('<span style="color:#999">→</span>')
        elif ch == "\n":
            out.append('<span style="color:#999">↵</span><br>')
        elif ch.isspace():
            out.append(f'<span style="color:#999">U+{ord(ch):04X}</span>')
        else:
            out.append(html.escape(ch))
    return "".join(out)


_BOX = "padding:2px 1px;margin:0 1px;border-radius:3px;white-space:pre-wrap;"
_GROUP = ("display:inline-flex;flex-direction:column;align-items:center;vertical-align:middle;"
          "outline:1px dashed #888;border-radius:3px;margin:0 2px;padding:0 2px")
_SPECIAL = ("background:#3d3d5c;color:#fff;font-weight:bold;border:2px solid #e76f51;padding:1px 4px;"
            "margin:0 2px;border-radius:4px;")


def token_html(pieces: list[bytes], special: frozenset[int] = frozenset(), ids: list[int] | None = None) -> str:
    """Tokens as coloured boxes: whitespace visible, special tokens (positions in `special`) dark
    with a red border, a character split across several tokens as one outlined box showing the
    character above its tokens' hex bytes."""
    spans = []
    for group in character_groups(pieces):
        if len(group) == 1:
            i = group[0]
            label, whole = token_label(pieces[i])
            title = f"token {i}" + (f" (id {ids[i]})" if ids else "") + f": {len(pieces[i])} bytes"
            if i in special:
                spans.append(f'<span title="{title}, special" style="{_SPECIAL}">{html.escape(label)}</span>')
            else:
                border = "" if whole else "outline:1px dashed #888;font-size:0.8em;"
                spans.append(f'<span title="{title}" style="background:{_PALETTE[i % len(_PALETTE)]};'
                             f'{border}{_BOX}">{visible(label) if whole else html.escape(label)}</span>')
            continue
        text = b"".join(pieces[j] for j in group).decode("utf-8", errors="replace")
        parts = "".join(f'<span title="token {j}: {len(pieces[j])} bytes" style="background:'
                        f'{_PALETTE[j % len(_PALETTE)]};{_BOX}font-size:0.7em">{html.escape(token_label(pieces[j])[0])}'
                        f'</span>' for j in group)
        spans.append(f'<span title="{html.escape(text)}: one character in {len(group)} tokens" style="{_GROUP}">'
                     f'<span style="font-size:1.2em">{html.escape(text)}</span><span>{parts}</span></span>')
    return '<div style="font-family:monospace;line-height:2.4">' + "".join(spans) + "</div>"


def byte_sizes(text: str) -> dict[str, int]:
    return {"UTF-8": len(text.encode("utf-8")), "UTF-16": len(text.encode("utf-16-le")),
            "UTF-32": len(text.encode("utf-32-le"))}


def render(settings: Settings) -> None:
    from explorer.corpus import current_tokenizer

    trained = current_tokenizer()
    options = ["default (1,000 tokens, Python docs)"] + (["trained in the Train view"] if trained else [])
    choice = st.radio("Tokenizer", options, horizontal=True, key="w_tok_choice",
                      help="The default is trained once per server on the first 500 kB of Python's "
                           "documentation; train your own in the Train view.")
    tok = trained.tokenizer if trained and choice == options[-1] and len(options) > 1 else default_tokenizer()
    text = st.text_area("Text", SAMPLE, height=120, key="w_tok_text", max_chars=100_000)
    if not text:
        st.info("Type some text to tokenize.")
        return
    ids = tok.encode(text)
    pieces = [tok.decode_bytes([i]) for i in ids]
    special_ids = {tok.encode(sp)[0] for sp in tok.special_tokens}
    special = frozenset(k for k, i in enumerate(ids) if i in special_ids)
    sizes = byte_sizes(text)
    c = st.columns(6)
    c[0].metric("tokens", f"{len(ids):,}")
    c[1].metric("characters", f"{len(text):,}", help="Unicode code points.")
    for col, (name, n) in zip(c[2:5], sizes.items()):
        col.metric(f"{name} bytes", f"{n:,}")
    c[5].metric("UTF-8 bytes / token", f"{sizes['UTF-8'] / len(ids):.2f}" if ids else "–")
    st.markdown(token_html(pieces, special, ids), unsafe_allow_html=True)
    st.caption(f"Vocabulary: {tok.vocab_size:,} ids. Each coloured box is one token; spaces show as ·, tabs "
               "as →, newlines as ↵. Dark boxes with a red border are special tokens (one id each, never "
               "merged). A dashed box groups the tokens of one character the vocabulary has no merge for "
               "(its UTF-8 bytes in hex, ⟨F0 9F⟩, under the character).")
    with st.expander("Token ids"):
        st.code(" ".join(map(str, ids)), language=None)
        st.dataframe([{"position": i, "id": t, "bytes": len(p), "token": token_label(p)[0]}
                      for i, (t, p) in enumerate(zip(ids, pieces))], hide_index=True, width="stretch")
