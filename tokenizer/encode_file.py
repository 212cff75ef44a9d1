"""Encode a large UTF-8 file into a 1-D .npy array of token ids (the training data of model.get_batch).

The .npy is a plain C-order array, so `np.load(path, mmap_mode="r")` maps it without reading it.
dtype: uint16 when every id fits (vocab_size <= 65,536), uint32 otherwise. Single-process encoding
streams the file; with workers, the file is cut at special tokens (tokenizer.chunking) and the chunks
are encoded in a process pool, in order. Ids go to a raw temporary file first, then into the .npy,
which appears atomically.
"""

from __future__ import annotations

import codecs
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from accounting.atomic import atomic_output
from tokenizer.bpe import Tokenizer
from tokenizer.chunking import chunk_boundaries, not_utf8, read_range
from tokenizer.errors import CorpusError

_READ_BYTES = 1 << 20


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 when ids 0..vocab_size-1 fit in 16 bits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def iter_utf8_text(path: str | os.PathLike[str], block: int = _READ_BYTES) -> Iterator[str]:
    """The file's text in blocks; CorpusError (`chunking.not_utf8`) for bad UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:  # raised on the pending bytes + data
                raise not_utf8(str(path), exc, fed - pending) from None
            fed += len(data)
            if text:
                yield text
            if not data:
                return


_WORKER_TOKENIZER: Tokenizer | None = None


def _init_worker(tokenizer: Tokenizer) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_range(args: tuple[str, int, int, str]) -> bytes:
    path, start, end, dtype = args
    assert _WORKER_TOKENIZER is not None
    return np.asarray(_WORKER_TOKENIZER.encode(read_range(path, start, end)), dtype=dtype).tobytes()


def _id_blocks(tokenizer: Tokenizer, path: str, dtype: np.dtype, workers: int,
               progress: Callable[[int], None] | None) -> Iterator[bytes]:
    """Raw id bytes in file order."""
    if workers <= 1 or not tokenizer.special_tokens:  # no special token: no safe place to cut
        yield from _stream_ids(tokenizer, path, dtype, progress)
        return
    split = tokenizer.special_tokens[0].encode("utf-8")  # the document separator, by convention
    cuts = chunk_boundaries(path, workers * 8, split)
    jobs = [(path, a, b, dtype.str) for a, b in zip(cuts, cuts[1:])]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
        for (_, a, b, _), raw in zip(jobs, pool.map(_encode_range, jobs)):
            if progress:
                progress(b - a)
            yield raw


def _counting(blocks: Iterator[str], progress: Callable[[int], None] | None) -> Iterator[str]:
    for text in blocks:
        if progress:
            progress(len(text.encode("utf-8")))
        yield text


def _stream_ids(tokenizer: Tokenizer, path: str, dtype: np.dtype,
                progress: Callable[[int], None] | None) -> Iterator[bytes]:
    batch: list[int] = []
    for token_id in tokenizer.encode_iterable(_counting(iter_utf8_text(path), progress)):
        batch.append(token_id)
        if len(batch) >= 1 << 20:
            yield np.asarray(batch, dtype=dtype).tobytes()
            batch = []
    if batch:
        yield np.asarray(batch, dtype=dtype).tobytes()


def encode_file(tokenizer: Tokenizer, input_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                workers: int = 1, progress: bool = False) -> int:
    """Encode `input_path` into the .npy `out_path` (written atomically); return the number of tokens.

    Errors: FileNotFoundError; CorpusError when the file is empty or not UTF-8 (no output is left).
    """
    path = str(input_path)
    size = Path(path).stat().st_size  # FileNotFoundError for a missing file
    if size == 0:
        raise CorpusError(f"{path} is empty: nothing to encode")
    dtype = ids_dtype(tokenizer.vocab_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc="encode", leave=False)
    out_dir = Path(out_path).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=out_dir) as raw:
            for block in _id_blocks(tokenizer, path, dtype, workers, bar.update if bar else None):
                raw.write(block)
            count = raw.tell() // dtype.itemsize
            raw.seek(0)
            with atomic_output(out_path) as tmp:
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(count,))
                step = 1 << 22
                for start in range(0, count, step):
                    n = min(step, count - start)
                    array[start:start + n] = np.frombuffer(raw.read(n * dtype.itemsize), dtype=dtype)
                array.flush()
                del array
    finally:
        if bar is not None:
            bar.close()
    return count


