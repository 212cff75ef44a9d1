"""Independent instruments for the accounting tests: the real model run on tiny CPU configs with
torch's own counters (saved_tensors_hooks, FlopCounterMode, a TorchDispatchMode), and a hand
count of the saved tensors of CS336's block for the preset-sized checks."""

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


def saved_bytes_by_hand(s: int, B: int = 2, T: int = 512, d: int = 768, h: int = 12, d_ff: int = 3072,
                        L: int = 12, V: int = 50257, *, blocks: bool = True, outside: bool = True) -> int:
    """The tensors a CS336 model (RMSNorm, RoPE, naive attention, SwiGLU; default sizes
    cs336-gpt2-small's at B=2, T=512) saves for backward, each one listed from the model's code;
    s = bytes of a matmul's activation dtype (4 float32, 2 under bf16 autocast, where each Linear
    saves its own bf16 copy of its input, RMSNorm and the loss stay float32). Checked against
    saved_tensors_hooks for every variant in test_activations; here written out so a wrong formula
    cannot agree with itself. blocks / outside: count the L blocks' tensors / those outside them
    (token ids, final norm, head, loss)."""
    d_k, bt = d // h, B * T
    copies = 1 if s == 4 else 3  # float32: q/k/v share one saved input; bf16: one copy each
    ffn_copies = 1 if s == 4 else 2  # w1 / w3 likewise
    block = (
        4 * bt * d + 4 * bt + 4 * bt * d     # ln1: float32 input, rms (B, T, 1), normalized
        + copies * s * bt * d                # q/k/v projections' input
        + 2 * 2 * T * (d_k // 2) * s         # RoPE: cos and sin rows (T, d_k/2) for q and for k
        + 3 * s * bt * d                     # q, k (rotated) and v: the two bmm's operands
        + T * T                              # the causal mask, bool
        + 2 * s * B * h * T * T              # exp(scores) and the probabilities
        + s * B * h * T                      # the softmax's row sums
        + s * bt * d                         # merged heads (a copy), output_proj's input
        + 4 * bt * d + 4 * bt + 4 * bt * d   # ln2
        + ffn_copies * s * bt * d            # w1 / w3's input
        + 4 * s * bt * d_ff                  # W1x, sigmoid(W1x), silu, W3x
        + s * bt * d_ff                      # w2's input
    )
    rest = (8 * bt                           # token ids, int64
            + 4 * bt * d + 4 * bt + 4 * bt * d   # ln_final
            + s * bt * d                     # lm_head's input
            + 4 * bt * V + 20 * bt)          # loss: float32 exp(shifted), row sums, int64 rows, targets
    return (L * block if blocks else 0) + (rest if outside else 0)


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
