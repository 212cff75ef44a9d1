"""The tokenizer measured on a text (compression, throughput) and fed into accounting's dataset
formulas (tokens, on-disk storage, tokenizing time).

Default text: the corpus the project builds from Python's own documentation
(tokenizer.stdlib_corpus_text, ~1.6 MB, no download). Default tokenizer: a byte-level BPE with
`vocab_size` tokens trained on that same text, so the compression is in-sample (optimistic).
Compression = UTF-8 bytes per token over the documents (split at "<|endoftext|>"); throughput =
UTF-8 bytes encoded per second on the first, timed pass (tokenizer.tokenizer_stats).

The dataset rows are a prediction put to the test, made as a user sizes a corpus: the compression
of a sample (every other document, the first, third, ...) gives accounting.dataset_estimate of the
whole text's tokens and storage, beside the whole text encoded and its ids stored. They differ by
how much the sample's compression differs from the whole text's (equal only when the text is one
document, the sample then being the whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import accounting as acc
from validation.rows import ComparisonRow

SPECIAL = "<|endoftext|>"


@dataclass(frozen=True)
class TokenizerMeasurement:
    """Measured tokenizer numbers on the whole text (`stats`: tokenizer.TokenizerStats) and on the
    sample (`sample_stats`), and the accounting's DatasetEstimate of the whole text from the
    sample's compression and throughput (`dataset`)."""

    stats: object
    vocab_size: int
    trained_on_text: bool
    measured_storage_bytes: int
    dataset: object
    sample_stats: object

    @property
    def bytes_per_token(self) -> float:
        return self.stats.bytes_per_token

    @property
    def bytes_per_s(self) -> float:
        return self.stats.bytes_per_second

    @property
    def rows(self) -> list[ComparisonRow]:
        s, ds = self.stats, self.dataset
        where = f"{s.n_documents} documents, {s.utf8_bytes:,} UTF-8 bytes" + (
            " (in-sample: the tokenizer was trained on this text)" if self.trained_on_text else "")
        return [
            ComparisonRow("tokenizer", "compression", "bytes/token", None, s.bytes_per_token,
                          f"UTF-8 bytes per token; {where}"),
            ComparisonRow("tokenizer", "throughput", "bytes/s", None, s.bytes_per_second,
                          "UTF-8 bytes encoded per second, one process, first pass"),
            ComparisonRow("dataset", "tokens", "tokens", ds.tokens, s.n_tokens,
                          f"symbolic: accounting.dataset_estimate, round(bytes / compression), with "
                          f"{s.utf8_bytes:,} bytes at the sample's {self.sample_stats.bytes_per_token:.4g} "
                          f"bytes/token; measured: the whole text encoded", self._sample_reason(ds.tokens)),
            ComparisonRow("dataset", "storage", "bytes", ds.storage_bytes, self.measured_storage_bytes,
                          f"symbolic: the estimated tokens as {ds.token_dtype} (accounting.token_dtype); "
                          "measured: the encoded ids in tokenizer.ids_dtype",
                          self._sample_reason(ds.tokens)),
        ]

    def _sample_reason(self, estimated_tokens: int) -> str:
        if estimated_tokens == self.stats.n_tokens:
            return ""
        sample, whole = self.sample_stats, self.stats
        return (f"the sample ({sample.n_documents} of {whole.n_documents} documents) compresses at "
                f"{sample.bytes_per_token:.4g} bytes/token, the whole text at {whole.bytes_per_token:.4g}")


def measure_tokenizer(text: str | None = None, tokenizer=None, *, vocab_size: int = 4096,
                      max_documents: int | None = None) -> TokenizerMeasurement:
    """Measure `tokenizer` (default: BPE of `vocab_size` trained on `text`) on `text` (default:
    the project's stdlib corpus). ValueError (CorpusError) when the text holds no document."""
    import numpy as np

    from tokenizer import Tokenizer, ids_dtype, stdlib_corpus_text, tokenizer_stats, train_bpe_from_text
    from tokenizer.stats import sample_documents

    if text is None:
        text = stdlib_corpus_text()
    trained = tokenizer is None
    if trained:
        vocab, merges = train_bpe_from_text(text, vocab_size, [SPECIAL])
        tokenizer = Tokenizer(vocab, merges, [SPECIAL])
    stats = tokenizer_stats(tokenizer, text, max_documents=max_documents)
    documents = sample_documents(text, max_documents)
    ids = [i for doc in documents for i in tokenizer.encode(doc)]
    storage = np.asarray(ids, dtype=ids_dtype(tokenizer.vocab_size)).nbytes
    sample = tokenizer_stats(tokenizer, SPECIAL.join(documents[::2]))
    dataset = acc.dataset_estimate(stats.utf8_bytes, sample.bytes_per_token, tokenizer.vocab_size,
                                   sample.bytes_per_second)
    return TokenizerMeasurement(stats, tokenizer.vocab_size, trained, int(storage), dataset, sample)
