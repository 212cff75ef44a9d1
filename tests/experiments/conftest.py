"""Tiny settings and data for the experiments tests (each run: a few ms per step on one thread)."""

from __future__ import annotations

import numpy as np

from accounting.config import ModelConfig

TINY = ModelConfig(vocab_size=64, context_length=16, d_model=24, num_layers=2, num_heads=2, d_ff=64,
                   attention="sdpa")
TEXT = ("The quick brown fox jumps over the lazy dog. A small model learns the next word. "
        "Tokens are counted, losses are logged, and every number states its unit.\n") * 60


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
    """Settings of a tiny sweep; TrainConfig fields among `overrides` go to its `training`."""
    import dataclasses

    from model.experiments.settings import EXPERIMENT_TRAINING, Settings
    from model.train_config import TrainConfig

    training = dict(steps=12, batch_size=4, eval_interval=6, eval_batches=2)
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    training.update({k: v for k, v in overrides.items() if k in train_fields})
    rest = {k: v for k, v in overrides.items() if k not in train_fields}
    base = dict(model_cfg=TINY, progress=False, plotly_js="cdn")
    return Settings(**{**base, **rest}, training=EXPERIMENT_TRAINING.replace(**training))
