"""The memory timeline (accounting.timeline) against MemTracker on the real model, call by call
(validation.memtrack: torch's MemTracker over model.trainer.training_step); its categories against
the other formulas; the largest batch against a search; the issue's numbers."""

from __future__ import annotations

import pytest

from accounting import ModelConfig, activation_bytes, get_preset, peak_memory_bytes, total_parameters
from accounting.parameters import matmul_parameters_formula
from accounting.rows import evaluate
from accounting.symbols import values
from accounting.timeline import PHASES, largest_batch, memory_timeline, timeline_peak_bytes

CALLS = ("forward", "loss", "backward")


def tiny(**variants) -> ModelConfig:
    sizes = dict(vocab_size=37, context_length=10, d_model=24, num_layers=2, num_heads=3, d_ff=40)
    sizes.update({k: variants.pop(k) for k in list(variants) if k in sizes})
    return ModelConfig(**sizes, **variants)


def measured(cfg: ModelConfig, batch_size: int, dtype: str = "float32", optimizer: str = "reference",
             checkpointing: bool = False, device: str = "cpu"):
    torch = pytest.importorskip("torch")
    from validation.memtrack import measure_timeline
    from validation.run import batch, build, placement

    torch.set_num_threads(1)
    with placement(device, dtype) as where:
        model = build(cfg, where, checkpointing=checkpointing)
        x, y = batch(cfg, batch_size, cfg.context_length, where)
        return measure_timeline(model, x, y, optimizer=optimizer, autocast=where.autocast,
                                values=device != "meta")


def sdpa_backend(cfg: ModelConfig, device: str = "cpu", dtype: str = "float32") -> str:
    """The kernel torch runs for attention="sdpa": its math decomposition on the meta device (not
    its fake CPU tensors under autocast) and on CPU with dropout, else the fused kernel."""
    meta = device == "meta" and dtype == "float32"
    return "math" if cfg.attention == "sdpa" and (meta or cfg.dropout > 0) else "fused"


def _calls(tl, m, phases=CALLS):
    """(timeline, MemTracker): every allocating call's (phase, live bytes) in `phases`."""
    return ([(e.phase, e.total) for e in tl.events if not e.boundary and e.phase in phases],
            [p for p in m.points if p[0] in phases])


def _phases_equal(tl, m, phases=PHASES[1:]) -> None:
    for phase in phases:
        if any(e.phase == phase and not e.boundary for e in tl.events):
            assert tl.phase_peak(phase).total == m.phase_peak(phase), phase
    for phase in ("forward", "loss", "backward"):
        assert tl.phase_end(phase).total == m.phase_end(phase), phase
    assert tl.events[0].total == m.start and tl.events[-1].total == m.boundaries[-1][1]


CASES = [
    ({}, 3, "float32"), ({}, 3, "bfloat16"), ({"num_heads": 1}, 1, "bfloat16"),
    ({"norm_position": "post", "ffn": "silu"}, 2, "bfloat16"),
    ({"norm": "none", "positions": "none", "tie_embeddings": True}, 3, "float32"),
    ({"attention": "sdpa"}, 3, "bfloat16"),
    ({"attention": "sdpa", "positions": "none", "norm_position": "post"}, 2, "float32"),
    ({"num_layers": 1, "positions": "none", "d_ff": 96}, 1, "float32"),
]


@pytest.mark.parametrize("variant,batch_size,dtype", CASES, ids=str)
def test_every_call_equals_memtracker(variant, batch_size, dtype):
    """Two blocks or fewer: every allocating call of forward, loss and backward, in order, has
    MemTracker's live bytes; clipping's and AdamW's maxima, every phase's end, the peak too."""
    cfg = tiny(**variant)
    m = measured(cfg, batch_size, dtype)
    tl = memory_timeline(cfg, batch_size, dtype=dtype)
    assert [(e.phase, e.total) for e in tl.events if not e.boundary and e.phase in CALLS] == \
        [p for p in m.points if p[0] in CALLS]
    _phases_equal(tl, m)
    assert tl.peak_bytes == m.peak


@pytest.mark.parametrize("optimizer", ["reference", "foreach", "fused"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_optimizers_and_aggregated_blocks(optimizer, dtype):
    """Four blocks (two replayed, two aggregated): every phase's maximum and end, and the peak."""
    cfg = tiny(num_layers=4)
    m = measured(cfg, 2, dtype, optimizer)
    tl = memory_timeline(cfg, 2, dtype=dtype, optimizer=optimizer)
    _phases_equal(tl, m)
    assert tl.peak_bytes == m.peak


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_checkpointing_is_exact_but_its_forward_an_upper_bound(dtype):
    cfg = tiny(num_layers=3)
    m = measured(cfg, 3, dtype, checkpointing=True)
    tl = memory_timeline(cfg, 3, dtype=dtype, checkpointing=True)
    assert tl.phase_peak("forward").total > m.phase_peak("forward")  # blocks' tensors kept to their end
    _phases_equal(tl, m, ("loss", "backward", "clip", "optimizer"))
    assert tl.peak_bytes == m.peak  # the peak is in the backward (the top block's recompute)
    cfg = tiny(num_layers=2)  # two blocks, both replayed: every call of the loss and the backward
    m, tl = measured(cfg, 3, dtype, checkpointing=True), memory_timeline(cfg, 3, dtype=dtype, checkpointing=True)
    timeline_calls, tracked_calls = _calls(tl, m, ("loss", "backward"))
    assert timeline_calls == tracked_calls


GPT2_BLOCK = dict(norm="layernorm", positions="learned", ffn="gelu", bias="all", dropout=0.1,
                  tie_embeddings=True)
LLAMA_BLOCK = dict(norm="rmsnorm", ffn="swiglu", positions="rope", num_heads=4, num_kv_heads=2, bias="qkv")


def _gqa(kv):
    return {} if kv is None else {"num_heads": 4, "num_kv_heads": kv}


# Every new switch value (layernorm, learned, gelu, each bias, dropout, h_kv = 2 and 1 of h = 4)
# meets every value of every other switch (the old ones, dtype, each other) at least once: a
# greedy pairwise cover (173 pairs in 15 configs), then the two published blocks.
# (norm, norm_position, positions, ffn, tie, attention, dtype, bias, dropout, h_kv, B)
NEW_VARIANTS = [
    ("layernorm", "pre", "learned", "gelu", False, "naive", "bfloat16", "all", 0.1, 2, 2),
    ("layernorm", "post", "learned", "gelu", True, "sdpa", "float32", "attention", 0.1, 1, 3),
    ("rmsnorm", "pre", "learned", "swiglu", False, "naive", "bfloat16", "qkv", 0.1, 1, 1),
    ("layernorm", "post", "none", "gelu", True, "sdpa", "float32", "qkv", 0.0, 2, 2),
    ("none", "post", "rope", "silu", True, "sdpa", "float32", "all", 0.1, 1, 3),
    ("rmsnorm", "pre", "rope", "gelu", False, "naive", "bfloat16", "attention", 0.0, 2, 1),
    ("layernorm", "pre", "learned", "gelu", True, "sdpa", "float32", "none", 0.1, None, 2),
    ("none", "pre", "learned", "silu", True, "sdpa", "float32", "qkv", 0.0, 2, 3),
    ("layernorm", "pre", "none", "swiglu", True, "sdpa", "bfloat16", "all", 0.0, 1, 1),
    ("none", "pre", "none", "silu", False, "sdpa", "bfloat16", "attention", 0.1, None, 2),
    ("layernorm", "pre", "rope", "silu", False, "sdpa", "bfloat16", "qkv", 0.0, None, 3),
    ("none", "pre", "rope", "gelu", False, "sdpa", "bfloat16", "none", 0.1, 1, 1),
    ("layernorm", "post", "none", "swiglu", True, "naive", "float32", "none", 0.0, 2, 2),
    ("rmsnorm", "post", "rope", "swiglu", True, "sdpa", "float32", "all", 0.0, None, 3),
    ("rmsnorm", "post", "rope", "swiglu", True, "sdpa", "bfloat16", "attention", 0.1, None, 2),
]
BLOCKS = [(GPT2_BLOCK, "naive", "float32", 2), (GPT2_BLOCK, "sdpa", "bfloat16", 3),
          (LLAMA_BLOCK, "sdpa", "bfloat16", 3), (LLAMA_BLOCK | {"num_kv_heads": 1}, "naive", "float32", 1)]


def _new_variant(v) -> tuple[ModelConfig, str, int]:
    norm, position, positions, ffn, tie, attention, dtype, bias, dropout, kv, batch_size = v
    cfg = tiny(norm=norm, norm_position=position, positions=positions, ffn=ffn, tie_embeddings=tie,
               attention=attention, bias=bias, dropout=dropout, **_gqa(kv))
    return cfg, dtype, batch_size


def _case_id(case) -> str:
    cfg, dtype, batch_size = case
    default = tiny()
    changed = [f"{f}={getattr(cfg, f)}" for f in ("norm", "norm_position", "positions", "ffn", "bias",
                                                   "tie_embeddings", "attention", "dropout", "num_heads",
                                                   "num_kv_heads") if getattr(cfg, f) != getattr(default, f)]
    return "-".join(changed + [dtype, f"B={batch_size}"])


@pytest.mark.parametrize("case", [_new_variant(v) for v in NEW_VARIANTS]
                         + [(tiny(attention=a, **b), dt, bs) for b, a, dt, bs in BLOCKS], ids=_case_id)
def test_every_call_of_every_variant_equals_memtracker(case):
    """The variants the model gained (LayerNorm, learned positions, GELU, biases, dropout,
    grouped-query attention), each against every other switch and the dtype, and the original
    GPT-2 block (LayerNorm, learned positions, GELU, every bias, dropout, tied) and a Llama block
    (RMSNorm, SwiGLU, RoPE, grouped-query, q/k/v biases): every call of forward, loss and
    backward, every phase, the peak. sdpa with dropout runs torch's math path on CPU."""
    cfg, dtype, batch_size = case
    m = measured(cfg, batch_size, dtype)
    tl = memory_timeline(cfg, batch_size, dtype=dtype, sdpa_backend=sdpa_backend(cfg, "cpu", dtype))
    timeline_calls, tracked_calls = _calls(tl, m)
    assert timeline_calls == tracked_calls
    _phases_equal(tl, m)
    assert tl.peak_bytes == m.peak


@pytest.mark.parametrize("variant", [{}, {"positions": "none", "norm_position": "post", "num_heads": 4,
                                          "num_kv_heads": 1, "bias": "all", "tie_embeddings": True}],
                         ids=["rope", "post-gqa-biases-tied"])
def test_math_sdpa_on_meta_every_call(variant):
    """The meta device runs sdpa as torch's math decomposition, dropout or not: the timeline's
    sdpa_backend="math" program, call by call (MemTracker on meta tensors)."""
    cfg = tiny(attention="sdpa", **variant)
    m = measured(cfg, 2, device="meta")
    tl = memory_timeline(cfg, 2, sdpa_backend="math")
    timeline_calls, tracked_calls = _calls(tl, m)
    assert timeline_calls == tracked_calls and tl.peak_bytes == m.peak
    assert tl.peak_bytes > memory_timeline(cfg, 2).peak_bytes  # float32 (B,h,T,T) weights saved


@pytest.mark.parametrize("block,attention,dtype,optimizer", [
    (GPT2_BLOCK, "naive", "bfloat16", "foreach"), (GPT2_BLOCK, "sdpa", "float32", "fused"),
    (LLAMA_BLOCK, "sdpa", "bfloat16", "reference"), (LLAMA_BLOCK, "naive", "float32", "foreach"),
], ids=["gpt2-naive-bfloat16-foreach", "gpt2-sdpa-float32-fused", "llama-sdpa-bfloat16-reference",
        "llama-naive-float32-foreach"])
def test_new_variants_aggregated_blocks_optimizers_and_checkpointing(block, attention, dtype, optimizer):
    """Four blocks (two replayed, two aggregated) with each AdamW: every phase's maximum and end;
    checkpointed, two blocks: every call of the loss and the backward, the forward an upper
    bound."""
    cfg = tiny(num_layers=4, attention=attention, **block)
    backend = sdpa_backend(cfg, "cpu", dtype)
    m = measured(cfg, 2, dtype, optimizer)
    tl = memory_timeline(cfg, 2, dtype=dtype, optimizer=optimizer, sdpa_backend=backend)
    _phases_equal(tl, m)
    assert tl.peak_bytes == m.peak
    cfg = cfg.replace(num_layers=2)
    m = measured(cfg, 3, dtype, checkpointing=True)
    tl = memory_timeline(cfg, 3, dtype=dtype, checkpointing=True, sdpa_backend=backend)
    timeline_calls, tracked_calls = _calls(tl, m, ("loss", "backward"))
    assert timeline_calls == tracked_calls and tl.peak_bytes == m.peak
    assert tl.phase_peak("forward").total >= m.phase_peak("forward")


ISSUE = ModelConfig(vocab_size=1000, context_length=64, d_model=96, num_layers=2, num_heads=4, d_ff=256)


def test_issue_peak():
    """Issue 15: V=1000, T=64, d=96, L=2, h=4, d_ff=256, B=3, float32, reference AdamW, steady
    state. MemTracker measures 11,772,804 bytes here, at the loss's mean, with the batch (two (3,64)
    int64 tensors, 3,072 bytes) tracked. The issue's 11,771,272 came from a script whose batch was
    get_batch's views of one (3,65) tensor made outside MemTracker (not tracked) and whose loss
    therefore copied the non-contiguous targets (1,536 bytes, tracked): 11,772,804 - 3,072 + 1,536
    = 11,771,268, 4 bytes (one float32 scalar that script kept) short. The old accounting said
    11,883,008 (every component at once)."""
    m = measured(ISSUE, 3)
    tl = memory_timeline(ISSUE, 3)
    assert m.peak == tl.peak_bytes == peak_memory_bytes(ISSUE, 3) == 11_772_804
    assert (tl.peak.phase, tl.peak.name) == ("loss", "cross_entropy: mean (the loss)")
    assert tl.peak.bytes["gradients"] == 0 and tl.peak.bytes["batch"] == 3_072


def test_issue_autocast_activations_and_working_copy():
    """Issue 15, L=3, B=3, bf16 autocast: 4,942,848 bytes saved for backward and 855,552 bytes of
    bf16 weight copies (only the matmul weights, the LM head included; the embedding is not
    cast), measured with saved_tensors_hooks on the real model beside the formulas."""
    torch = pytest.importorskip("torch")
    from model.loss import cross_entropy
    from validation.counters import WeightCasts, saved_bytes_by_component
    from validation.run import build

    cfg = ISSUE.replace(num_layers=3)
    model = build(cfg, "cpu", "bfloat16")
    x = torch.randint(0, 1000, (3, 64))
    params, copies = list(model.parameters()), {}
    with WeightCasts(params) as casts, saved_bytes_by_component(None, params, casts.keys, copies) as saved:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        loss = cross_entropy(logits, torch.randint(0, 1000, (3, 64)))
    del loss, logits
    assert sum(saved.values()) == activation_bytes(cfg, 3, dtype="bfloat16") == 4_942_848
    matmul = evaluate(matmul_parameters_formula(cfg), values(cfg))
    tl = memory_timeline(cfg, 3, dtype="bfloat16")
    assert sum(copies.values()) == 2 * matmul == tl.phase_end("loss").bytes["weights_bf16_copy"] == 855_552


@pytest.mark.parametrize("cfg", [get_preset("cs336-gpt2-small"), tiny(norm="none", tie_embeddings=True),
                                 tiny(norm_position="post", attention="sdpa", positions="none")], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_categories_agree_with_the_other_formulas(cfg, dtype):
    """Start: weights + AdamW state (12 bytes per parameter), RoPE's tables, the batch; after the
    loss: every saved activation (activation_bytes) and, under autocast, every bf16 weight copy;
    after backward: one float32 gradient per parameter; the step ends where it started, plus the
    loss the caller still holds."""
    B, T = 2, 32
    tl = memory_timeline(cfg, B, T, dtype=dtype)
    n = total_parameters(cfg)
    rope = 4 * cfg.context_length * cfg.head_dim if cfg.positions == "rope" else 0
    start = tl.events[0]
    assert start.total == 12 * n + rope + 16 * B * T and start.bytes["batch"] == 16 * B * T
    loss = tl.phase_end("loss").bytes
    assert loss["activations"] + loss["batch"] == activation_bytes(cfg, B, T, dtype=dtype)
    copy = 2 * evaluate(matmul_parameters_formula(cfg), values(cfg)) if dtype == "bfloat16" else 0
    assert loss["weights_bf16_copy"] == copy and loss["gradients"] == 0
    assert tl.phase_end("backward").bytes["gradients"] == 4 * n
    assert tl.events[-1].total == start.total + 4 and tl.events[-1].bytes["gradients"] == 0
    peak = tl.peak
    assert tl.formula(peak).xreplace({k: v for k, v in values(cfg, B, T).items()}) == peak.total


@pytest.mark.parametrize("dtype,optimizer,checkpointing", [("float32", "reference", False),
                                                           ("bfloat16", "foreach", False),
                                                           ("float32", "fused", True)])
def test_largest_batch_is_the_search_answer(dtype, optimizer, checkpointing):
    """The peak is the maximum of lines in B, so B = min over events of floor((budget - a) / b);
    checked against the largest B a search finds with the peak itself."""
    cfg = get_preset("cs336-gpt2-small").replace(num_layers=4)
    kw = dict(dtype=dtype, optimizer=optimizer, checkpointing=checkpointing)
    peaks = [timeline_peak_bytes(cfg, b, 256, **kw) for b in range(1, 202)]
    assert peaks == sorted(peaks)
    for budget in (peaks[0] - 1, peaks[0], peaks[7] + 1, (peaks[60] + peaks[61]) // 2, peaks[200]):
        fit = largest_batch(cfg, budget, 256, **kw)
        assert fit.batch_size == sum(p <= budget for p in peaks)
    with pytest.raises(ValueError, match="smaller than the weights"):
        largest_batch(cfg, 16 * total_parameters(cfg), 256, **kw)
