"""Shared by every test folder: the read-only test data beside the project (skipped when absent),
the tiny model config the instrument tests run, and one torch thread for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (corpus.en, GPT-2 vocab/merges, BPE reference); skip the test if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA} (present for developers and CI only)")
    return SHARED_DATA


def tiny(**variants):
    """The tiny config of the instrument tests: V=37, T=16, d=24, L=2, h=3, d_ff=40 (+ variants)."""
    from accounting.config import ModelConfig

    return ModelConfig(vocab_size=37, context_length=16, d_model=24, num_layers=2, num_heads=3,
                       d_ff=40, **variants)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread is faster, predictable on a shared 2-core machine, and leaves the
    other core to the test processes some tests start. (Not imported when torch is absent.)"""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
