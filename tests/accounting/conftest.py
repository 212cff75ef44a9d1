"""Independent instruments for the accounting tests: the real model run on tiny CPU configs with
torch's own counters (saved_tensors_hooks, FlopCounterMode, a TorchDispatchMode)."""

from __future__ import annotations

import itertools

import pytest

from ..conftest import tiny

VARIANT_GRID = list(itertools.product(("rmsnorm", "none"), ("pre", "post"), ("rope", "none"),
                                      ("swiglu", "silu"), (False, True), ("naive", "sdpa")))


def saved_bytes(cfg, batch_size: int, context_length: int, dtype: str = "float32",
                sdpa_math: bool = False) -> int:
    """Bytes saved for backward by the real model + loss, deduplicated by storage, no parameters
    and no bf16 copies of them (validation's saved-tensor instrument). `dtype`: "float32";
    "bfloat16", the trainer's autocast over a float32 model; "bfloat16-pure", a bf16 model.
    `sdpa_math` forces torch's math sdpa kernel (the one the meta device runs)."""
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from model.loss import cross_entropy
    from model.transformer import TransformerLM
    from validation.counters import WeightCasts, saved_bytes_by_component

    torch.manual_seed(0)
    model = TransformerLM(cfg, dtype=torch.bfloat16 if dtype == "bfloat16-pure" else None)
    x = torch.randint(0, cfg.vocab_size, (batch_size, context_length))
    y = torch.randint(0, cfg.vocab_size, (batch_size, context_length))
    backend = sdpa_kernel(SDPBackend.MATH) if sdpa_math else contextlib.nullcontext()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    params = list(model.parameters())
    with backend, WeightCasts(params) as casts, saved_bytes_by_component(None, params, casts.keys) as saved:
        with autocast:
            logits = model(x)
        loss = cross_entropy(logits, y)
    del loss
    return sum(saved.values())


def dispatch_counter():
    """validation's TorchDispatchMode counter: accounting.conventions.op_flops over every aten
    call (`.nonmatmul_flops()` after the block)."""
    from validation.counters import DispatchCounter

    return DispatchCounter()


def _variant_id(v) -> str:
    norm, position, positions, ffn, tie, attention = v
    return f"{norm}-{position}-{positions}-{ffn}-{'tied' if tie else 'untied'}-{attention}"


@pytest.fixture(params=VARIANT_GRID, ids=[_variant_id(v) for v in VARIANT_GRID])
def variant_cfg(request):
    """A tiny ModelConfig, once per combination of every variant switch (64)."""
    norm, position, positions, ffn, tie, attention = request.param
    return tiny(norm=norm, norm_position=position, positions=positions, ffn=ffn,
                tie_embeddings=tie, attention=attention)


@pytest.fixture(scope="session")
def instruments():
    pytest.importorskip("torch")
    return type("Instruments", (), {"saved_bytes": staticmethod(saved_bytes),
                                    "dispatch_counter": staticmethod(dispatch_counter),
                                    "tiny": staticmethod(tiny)})
