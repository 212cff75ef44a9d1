"""Tokenizer: type or paste text, see its tokens coloured, their ids, bytes per token, and the
text's size in UTF-8 / UTF-16 / UTF-32 bytes (UTF-16 and UTF-32 without a byte-order mark)."""

from __future__ import annotations

import html

import streamlit as st

from explorer.state import Settings

SAMPLE = "Hello, world! The tokenizer splits text into pre-tokens, then merges bytes. Ünïcödé 🙂 日本語."
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


def token_html(pieces: list[bytes]) -> str:
    """Tokens as coloured spans; partial UTF-8 characters as hex bytes with a dashed outline."""
    spans = []
    for i, raw in enumerate(pieces):
        label, whole = token_label(raw)
        text = html.escape(label).replace("\n", "↵<br>")
        border = "" if whole else "outline:1px dashed #888;font-size:0.8em;"
        spans.append(f'<span title="token {i}: {len(raw)} bytes" style="background:{_PALETTE[i % len(_PALETTE)]};'
                     f'{border}padding:2px 1px;margin:0 1px;border-radius:3px;white-space:pre-wrap">{text}</span>')
    return '<div style="font-family:monospace;line-height:2.2">' + "".join(spans) + "</div>"


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
    sizes = byte_sizes(text)
    c = st.columns(6)
    c[0].metric("tokens", f"{len(ids):,}")
    c[1].metric("characters", f"{len(text):,}", help="Unicode code points.")
    for col, (name, n) in zip(c[2:5], sizes.items()):
        col.metric(f"{name} bytes", f"{n:,}")
    c[5].metric("UTF-8 bytes / token", f"{sizes['UTF-8'] / len(ids):.2f}" if ids else "–")
    st.markdown(token_html(pieces), unsafe_allow_html=True)
    st.caption(f"Vocabulary: {tok.vocab_size:,} ids. Each coloured box is one token; ⟨C3⟩-style boxes "
               "are single bytes of a multi-byte UTF-8 character that the vocabulary has no merge for.")
    with st.expander("Token ids"):
        st.code(" ".join(map(str, ids)), language=None)
        st.dataframe([{"position": i, "id": t, "bytes": len(p), "token": token_label(p)[0]}
                      for i, (t, p) in enumerate(zip(ids, pieces))], hide_index=True, width="stretch")
