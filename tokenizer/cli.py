"""Command line: train a tokenizer, encode a corpus to .npy, measure compression and speed.

    python -m tokenizer train CORPUS --vocab-size N --special-token '<|endoftext|>' --out DIR [--workers K]
    python -m tokenizer encode CORPUS --tokenizer DIR --out ids.npy [--workers K]
    python -m tokenizer stats TEXT --tokenizer DIR [--max-documents N]

CORPUS / TEXT may be the word `stdlib`: the default corpus built from Python's documentation.
Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import resource
from collections.abc import Iterator, Sequence
from pathlib import Path

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser, run_cli
from tokenizer.bpe import Tokenizer
from tokenizer.chunking import read_corpus
from tokenizer.corpus import write_stdlib_corpus
from tokenizer.encode_file import encode_file
from tokenizer.stats import tokenizer_stats
from tokenizer.train import TrainTimings, train_bpe

STDLIB = "stdlib"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m tokenizer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    train = commands.add_parser("train", help="train a byte-level BPE tokenizer")
    train.add_argument("corpus", help="UTF-8 text file, or 'stdlib'")
    train.add_argument("--vocab-size", type=_positive, required=True)
    train.add_argument("--special-token", action="append", default=[], dest="special_tokens")
    train.add_argument("--out", required=True, help="directory for vocab.json, merges.txt, special_tokens.json")
    train.add_argument("--workers", type=_positive, default=1)
    encode = commands.add_parser("encode", help="encode a corpus into a .npy of token ids")
    encode.add_argument("corpus", help="UTF-8 text file, or 'stdlib'")
    encode.add_argument("--tokenizer", required=True, help="directory written by 'train'")
    encode.add_argument("--out", required=True, help="output .npy")
    encode.add_argument("--workers", type=_positive, default=1)
    stats = commands.add_parser("stats", help="compression (bytes/token) and throughput (bytes/s)")
    stats.add_argument("text", help="UTF-8 text file, or 'stdlib'")
    stats.add_argument("--tokenizer", required=True, help="directory written by 'train'")
    stats.add_argument("--max-documents", type=_positive, default=None)
    return parser


@contextlib.contextmanager
def _corpus_path(name: str) -> Iterator[Path]:
    """The corpus file; for 'stdlib', a temporary file holding the default corpus."""
    if name != STDLIB:
        yield Path(name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stdlib.txt"
        write_stdlib_corpus(path)
        yield path


def _train(args) -> None:
    check_writable(args.out, folder=True)  # before the training, not after it
    timings: list[TrainTimings] = []
    start = time.perf_counter()
    with _corpus_path(args.corpus) as path:
        vocab, merges = train_bpe(path, args.vocab_size, args.special_tokens, num_workers=args.workers,
                                  progress=True, timings=timings)
    seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    Tokenizer(vocab, merges, args.special_tokens).save(args.out)
    specials = {t.encode("utf-8") for t in args.special_tokens}
    longest = sorted((t for t in vocab.values() if t not in specials), key=len, reverse=True)[:5]
    print(f"trained {len(vocab):,} tokens ({len(merges):,} merges) in {seconds:.2f} s "
          f"(pre-tokenize {timings[0].pretokenize_seconds:.2f} s, merges {timings[0].merge_seconds:.2f} s); "
          f"peak RSS of this process {peak_rss / 2**20:.0f} MiB")
    print("longest tokens: " + ", ".join(repr(t.decode("utf-8", errors="replace")) for t in longest))
    print(f"saved to {args.out}")


def _encode(args) -> None:
    check_writable(args.out)  # before the encoding, not after it
    tokenizer = Tokenizer.from_dir(args.tokenizer)
    start = time.perf_counter()
    with _corpus_path(args.corpus) as path:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        count = encode_file(tokenizer, path, args.out, workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    print(f"{count:,} tokens from {size:,} bytes ({size / max(count, 1):.2f} bytes/token) in {seconds:.2f} s "
          f"({size / seconds / 1e6:.2f} MB/s) -> {args.out}")


def _stats(args) -> None:
    tokenizer = Tokenizer.from_dir(args.tokenizer)
    with _corpus_path(args.text) as path:
        text = read_corpus(path)
    s = tokenizer_stats(tokenizer, text, args.max_documents)
    print(f"documents        {s.n_documents:,}")
    print(f"tokens           {s.n_tokens:,}")
    print(f"bytes per token  {s.bytes_per_token:.3f} (UTF-8)")
    print(f"throughput       {s.bytes_per_second / 1e6:.2f} MB/s ({s.tokens_per_second:,.0f} tokens/s)")
    print(f"size UTF-8       {s.utf8_bytes:,} bytes")
    print(f"size UTF-16      {s.utf16_bytes:,} bytes ({s.utf16_bytes / s.utf8_bytes:.2f}x UTF-8)")
    print(f"size UTF-32      {s.utf32_bytes:,} bytes ({s.utf32_bytes / s.utf8_bytes:.2f}x UTF-8)")


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    {"train": _train, "encode": _encode, "stats": _stats}[args.command](args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m tokenizer")
