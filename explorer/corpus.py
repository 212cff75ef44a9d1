"""Train view, part 1: pick a corpus and train a byte-level BPE tokenizer on it.

Corpora: Python's own documentation (tokenizer.corpus.stdlib_corpus_text, built from this Python
install, nothing downloaded), an uploaded text file (at most 20 MiB), or a file of the server's
data directory, offered only when the operator names one (explorer.datadir:
LM_ACCOUNTING_DATA_DIR; only files inside it are read). Sizes are UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from explorer.datadir import DATA_DIR_ENV, data_dir, resolve_inside
from tokenizer import DOCUMENT_SEPARATOR, Tokenizer, tokenizer_stats, train_bpe_from_text

MAX_UPLOAD_BYTES = 20 * 2**20
SOURCES = ("Python documentation (built from this Python install)", "Upload a text file",
           "A file of the server's data directory")
_TOKENIZER = "train_tokenizer"


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str

    @property
    def key(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class TrainedTokenizer:
    tokenizer: Tokenizer
    corpus_key: str
    bytes_per_token: float
    longest: list[tuple[int, bytes]]


def read_text(data: bytes, name: str) -> str:
    """UTF-8 text of an upload or file; ValueError (shown inline) for binary, non-UTF-8 or too large."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{name} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB")
    if b"\x00" in data[:65_536]:
        raise ValueError(f"{name} looks binary (it holds NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text.strip():
        raise ValueError(f"{name} holds no text")
    return text


@st.cache_resource(show_spinner="Building the corpus from Python's documentation…")
def _stdlib_text() -> str:
    from tokenizer import stdlib_corpus_text

    return stdlib_corpus_text()


def _source_text(source: str) -> tuple[str, str] | None:
    if source == SOURCES[0]:
        return "Python documentation", _stdlib_text()
    if source == SOURCES[1]:
        upload = st.file_uploader("Text file (UTF-8, at most 20 MiB)", key="w_train_upload")
        return None if upload is None else (upload.name, read_text(upload.getvalue(), upload.name))
    folder = data_dir()
    if folder is None:  # not offered; a link or an old session may still ask for it
        raise ValueError(f"reading files on the server is off ({DATA_DIR_ENV} is not set)")
    path_text = st.text_input(f"File in the data directory {folder} (UTF-8 text)", key="w_train_path")
    if not path_text:
        return None
    path = resolve_inside(path_text, folder)
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{path_text} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    return path.name, read_text(path.read_bytes(), path.name)


def pick_corpus() -> Corpus | None:
    """The corpus widgets; the chosen corpus cut to its first `kB` (None, with a message, if none)."""
    c = st.columns([3, 1])
    try:
        offered = SOURCES if data_dir() is not None else SOURCES[:2]
    except ValueError as exc:  # the operator's variable names no directory
        st.error(f"The server's data directory is misconfigured: {exc}; local files are off.")
        offered = SOURCES[:2]
    source = c[0].radio("Corpus", offered, key="w_train_source")
    if len(offered) < len(SOURCES):
        c[0].caption(f"Files on the server are off: the operator can name a data directory with {DATA_DIR_ENV}.")
    kilobytes = c[1].number_input("Use the first … kB", 10, 20_000, 300, step=50, key="w_train_kb",
                                  help="UTF-8 kilobytes (10³ bytes) of the corpus to train on.")
    try:
        found = _source_text(source)
    except ValueError as exc:
        st.error(str(exc))
        return None
    if found is None:
        st.info("Choose a file to train on.")
        return None
    name, text = found
    data = text.encode("utf-8")[: kilobytes * 1000]
    text = data.decode("utf-8", errors="ignore")
    docs = text.count(DOCUMENT_SEPARATOR) + 1
    st.caption(f"{name}: {len(data):,} UTF-8 bytes, {docs:,} documents (separated by {DOCUMENT_SEPARATOR}).")
    return Corpus(name, text)


def train_tokenizer(corpus: Corpus, vocab_size: int) -> TrainedTokenizer:
    """Train BPE on the corpus with a progress bar; store and return the result."""
    bar = st.progress(0.0, text="Training the BPE tokenizer…")

    shown = [-1.0]

    def progress(done: int, total: int) -> None:
        fraction = min(done / max(total, 1), 1.0)
        if fraction - shown[0] >= 0.02 or done == total:  # a page update per 2%, not per merge
            shown[0] = fraction
            bar.progress(fraction, text=f"BPE merges {done:,} / {total:,}")

    specials = [DOCUMENT_SEPARATOR]
    vocab, merges = train_bpe_from_text(corpus.text, vocab_size, specials, progress=progress)
    bar.empty()
    tokenizer = Tokenizer(vocab, merges, specials)
    stats = tokenizer_stats(tokenizer, corpus.text, max_documents=300)
    longest = sorted(((i, b) for i, b in vocab.items() if i >= len(specials)), key=lambda x: -len(x[1]))[:12]
    trained = TrainedTokenizer(tokenizer, corpus.key, stats.bytes_per_token, longest)
    st.session_state[_TOKENIZER] = trained
    return trained


def current_tokenizer(corpus: Corpus | None = None) -> TrainedTokenizer | None:
    """The session's trained tokenizer (only if trained on `corpus`, when given)."""
    trained = st.session_state.get(_TOKENIZER)
    if trained is None or (corpus is not None and trained.corpus_key != corpus.key):
        return None
    return trained


def tokenizer_section(corpus: Corpus) -> TrainedTokenizer | None:
    c = st.columns([1, 1, 2])
    vocab_size = int(c[0].number_input("Vocabulary size", 258, 16_384, 512, step=64, key="w_train_vocab",
                                       help="Special token + 256 bytes + merges."))
    if c[1].button("Train tokenizer", key="w_train_tokenizer"):
        train_tokenizer(corpus, vocab_size)
    trained = current_tokenizer(corpus)
    if trained is None:
        c[2].caption("No tokenizer for this corpus yet (Start training trains one with these settings).")
        return None
    c[2].metric("Compression", f"{trained.bytes_per_token:.2f} bytes/token",
                help="UTF-8 bytes per token over up to 300 documents of the corpus.")
    with st.expander(f"Longest of the {trained.tokenizer.vocab_size:,} tokens"):
        st.dataframe([{"id": i, "bytes": len(b), "token": b.decode("utf-8", errors="replace")}
                      for i, b in trained.longest], hide_index=True, width="stretch")
    return trained
