"""Tiny settings and data for the experiments tests (each run: a few ms per step on one thread)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accounting.config import ModelConfig

TINY = ModelConfig(vocab_size=64, context_length=16, d_model=24, num_layers=2, num_heads=2, d_ff=64,
                   attention="sdpa")
TEXT = ("The quick brown fox jumps over the lazy dog. A small model learns the next word. "
        "Tokens are counted, losses are logged, and every number states its unit.\n") * 60


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_corpus(size: int = 6_000, vocab: int = 64):
    """A learnable token stream: a repeating random 40-token phrase with 10% random substitutions."""
    from model.experiments.data import Corpus

    rng = np.random.default_rng(0)
    phrase = rng.integers(0, vocab, size=40)
    ids = np.tile(phrase, size // 40 + 1)[:size]
    noise = rng.random(size) < 0.1
    ids[noise] = rng.integers(0, vocab, size=int(noise.sum()))
    return Corpus(ids.astype(np.uint16), vocab, "synthetic", None, None, None)


def tiny_settings(**overrides):
    from model.experiments.settings import Settings

    base = dict(model_cfg=TINY, steps=12, batch_size=4, eval_interval=6, eval_batches=2, progress=False,
                plotly_js="cdn")
    return Settings(**{**base, **overrides})
