"""Tokenizer benchmark: ours beside the reference tools, on the same text and machine, in one run.

    python benchmarks/bench_tokenizer.py [--data ../shared/data] [--repeat 3]

1. BPE training on corpus.en at vocab 500 (the CS336 reference run) vs Hugging Face `tokenizers`.
2. BPE training at vocab 10,000 on a multi-MB corpus built at run time (the stdlib corpus `--repeat`
   times + corpus.en + the TinyStories sample) vs `tokenizers` BpeTrainer (ByteLevel pre-tokenizer,
   same vocab size and special token), with our split into pre-tokenization and merges.
3. Encoding throughput with GPT-2's vocabulary vs single-threaded tiktoken built offline from the same
   files (identical ids asserted), and our 2-process .npy encoder; the time to encode 825 GB (the
   Pile) extrapolated at each rate.
Peak memory: the process's resident set size (psutil), sampled every 5 ms, above the level at start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenizer import GPT2_PATTERN, Tokenizer, encode_file, stdlib_corpus_text, train_bpe  # noqa: E402
from tokenizer.train import TrainTimings  # noqa: E402

EOT = "<|endoftext|>"
PILE_BYTES = 825e9


def _peak_rss(fn: Callable[[], object]) -> tuple[object, float, int]:
    """(result, seconds, peak RSS above the starting RSS in bytes) of fn()."""
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return result, seconds, max(peak[0], proc.memory_info().rss) - base


def _hf_train(path: Path, vocab_size: int) -> tuple[int, float, int]:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    def run() -> int:
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train([str(path)], trainer)
        return hf.get_vocab_size()

    return _peak_rss(run)  # type: ignore[return-value]


def _ours_train(path: Path, vocab_size: int, workers: int) -> tuple[int, float, int, TrainTimings]:
    timings: list[TrainTimings] = []
    (vocab, _), seconds, peak = _peak_rss(lambda: train_bpe(path, vocab_size, [EOT], num_workers=workers,
                                                            timings=timings))
    return len(vocab), seconds, peak, timings[0]


def _row(name: str, size: int, n: int, seconds: float, peak: int, note: str = "") -> str:
    return (f"| {name} | {n:,} | {seconds:.3f} | {size / seconds / 1e6:.2f} | {peak / 2**20:.0f} | {note} |")


def bench_training(data: Path, big: Path) -> list[str]:
    lines = ["| training run | vocab | seconds | MB/s | peak RSS MiB | note |", "|---|---:|---:|---:|---:|---|"]
    small = data / "corpus.en"
    for path, vocab_size, label in ((small, 500, "corpus.en"), (big, 10_000, big.name)):
        size = path.stat().st_size
        runs = [(1, "ours, 1 process")] + ([(2, "ours, 2 processes")] if vocab_size > 500 else [])
        for workers, name in runs:
            n, seconds, peak, t = _ours_train(path, vocab_size, workers)
            lines.append(_row(f"{label}: {name}", size, n, seconds, peak,
                              f"pre-tokenize {t.pretokenize_seconds:.3f} s "
                              f"({size / t.pretokenize_seconds / 1e6:.1f} MB/s), merges {t.merge_seconds:.3f} s"))
        n, seconds, peak = _hf_train(path, vocab_size)
        lines.append(_row(f"{label}: HF tokenizers BpeTrainer", size, n, seconds, peak,
                          f"Rust, {os.cpu_count()} threads"))
    return lines


def _tiktoken_gpt2(data: Path, tok: Tokenizer):
    import tiktoken

    ranks = {raw: i for i, raw in tok.vocab.items() if raw != EOT.encode()}
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})


def bench_encoding(data: Path, big: Path) -> list[str]:
    text = big.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    tok = Tokenizer.from_gpt2_files(data / "gpt2_vocab.json", data / "gpt2_merges.txt", [EOT])
    enc = _tiktoken_gpt2(data, tok)
    ours_cold, s_cold, peak_cold = _peak_rss(lambda: tok.encode(text))
    ours_warm, s_warm, peak_warm = _peak_rss(lambda: tok.encode(text))
    theirs, s_tik, peak_tik = _peak_rss(lambda: enc.encode(text, allowed_special="all"))
    assert ours_cold == theirs and ours_warm == theirs, "ids differ from tiktoken"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Tokenizer.from_gpt2_files(data / "gpt2_vocab.json", data / "gpt2_merges.txt", [EOT])
        n_file, s_file, peak_file = _peak_rss(lambda: encode_file(fresh, big, Path(tmp) / "ids.npy", workers=2))
    assert n_file == len(theirs)
    lines = ["| encoder (GPT-2 vocab) | tokens | seconds | MB/s | peak RSS MiB | 825 GB at this rate |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, n, seconds, peak in (
        ("ours, 1 process, first pass (cold cache)", len(ours_cold), s_cold, peak_cold),
        ("ours, 1 process, second pass (warm cache)", len(ours_warm), s_warm, peak_warm),
        ("tiktoken, 1 thread", len(theirs), s_tik, peak_tik),
        ("ours, encode_file to .npy, 2 processes, cold", n_file, s_file, peak_file),
    ):
        hours = PILE_BYTES / (size / seconds) / 3600
        lines.append(f"| {name} | {n:,} | {seconds:.3f} | {size / seconds / 1e6:.2f} | {peak / 2**20:.0f} | "
                     f"{hours:,.0f} h |")
    lines.append("")
    lines.append(f"ids identical to tiktoken: yes ({len(theirs):,} tokens, {size / len(theirs):.2f} bytes/token)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "corpus.en").exists():
        parser.error(f"needs the shared test data (corpus.en, GPT-2 files) in {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / f"stdlibx{args.repeat}+corpus.en+tinystories.txt"
        parts = [stdlib_corpus_text()] * args.repeat
        parts += [(args.data / name).read_text(encoding="utf-8") for name in ("corpus.en", "tinystories_sample.txt")]
        big.write_text(EOT.join(parts), encoding="utf-8")
        mb = big.stat().st_size / 1e6
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}; "
              f"load average at start {os.getloadavg()[0]:.2f}; big corpus {mb:.2f} MB\n")
        print("\n".join(bench_training(args.data, big)))
        print()
        print("\n".join(bench_encoding(args.data, big)))


if __name__ == "__main__":
    main()
