"""Our block against Hugging Face's: bytes saved for backward, per part of the model, with every
difference named and sized.

Both models are built from the same config.json and measured the same way on the meta device
(saved_tensors_hooks, each storage once, parameters excluded; float32; our attention "naive",
HF's "eager": the written-out path on both sides; torch's CPU dispatch, whose dropout keeps a mask
in the input's dtype). The difference in each part is predicted by a formula for each named cause:
  - norm_kernel: our LayerNorm is written out and saves the centered input and its normalized
    product (8BTd + 4BT per call); torch's native_layer_norm saves its input, mean and rstd
    (4BTd + 8BT). RMSNorm is written out on both sides: no difference.
  - softmax: our softmax is written out: exp(.) and the row sums are saved beside the weights
    (4BhT^2 + 4BhT per block), and our causal mask is a saved bool (T, T); torch's fused softmax
    saves only its output, and HF's additive mask is saved by nothing.
  - rope_tables: we index cos and sin per call (2 x 4 T d_k per block); HF computes them once per
    forward for every block (2 x 4 T d_k in all, positions (1, T)).
  - silu_kernel: our SiLU is x * sigmoid(x), which saves sigmoid(x) too (4BT d_ff per block); torch's
    fused silu saves its input only. GELU is written out alike on both sides.
  - dropout_masks: our keep masks are bool (1 byte an element); torch's CPU dropout keeps a float32
    mask (4) and, on the attention weights, the weights before dropout too: per block
    (1 - 8) B h T^2 (attention) and 2 x (1 - 4) B T d (residual branches), and (1 - 4) B T d once
    (embeddings).
  - loss: our cross_entropy is written out (exp of the shifted logits, row sums, int64 row numbers
    and targets: 4BTV + 20BT); torch's log_softmax + nll_loss save the log-probabilities, the
    int64 targets and a float32 total weight (4BTV + 8BT + 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARTS = ("embeddings", "block norms", "attention", "FFN", "final norm", "head + loss")
"""The parts of the model compared (their components listed in `_PART_OF`)."""


@dataclass(frozen=True)
class PartComparison:
    """Saved bytes of one part of the model, ours beside HF's, and the named causes of the gap."""

    part: str
    ours: int
    hf: int
    causes: tuple[tuple[str, int], ...]    # (cause, predicted bytes ours - hf)

    @property
    def explained(self) -> bool:
        return self.ours - self.hf == sum(size for _, size in self.causes)


def _part(component: str, hf: bool) -> str:
    """Which part a component (ours, or HF's module path with layers folded) belongs to."""
    name = component.lower()
    if "embed" in name or name.startswith(("transformer.wte", "transformer.wpe", "transformer.drop")):
        return "embeddings"
    if name in ("transformer.ln_f", "model.norm", "ln_final"):
        return "final norm"
    if name in ("lm_head", "cross_entropy", "(outside any submodule)"):
        return "head + loss"
    if any(k in name for k in ("ln_1", "ln_2", "layernorm", "layers.ln1", "layers.ln2")):
        return "block norms"
    if any(k in name for k in ("attn", "drop1")):
        return "attention"
    if any(k in name for k in ("mlp", "ffn", "drop2")):
        return "FFN"
    raise ValueError(f"no part for component {component!r} ({'HF' if hf else 'ours'})")


def _causes(cfg, batch_size: int, seq_len: int) -> dict[str, list[tuple[str, int]]]:
    """Predicted (ours - HF) bytes per part and cause, float32, torch's CPU/meta dispatch."""
    B, T, d, L = batch_size, seq_len, cfg.d_model, cfg.num_layers
    h, d_k, d_ff, V = cfg.num_heads, cfg.head_dim, cfg.d_ff, cfg.vocab_size
    drop = cfg.dropout > 0
    per_norm = 4 * B * T * d - 4 * B * T if cfg.norm == "layernorm" else 0
    causes: dict[str, list[tuple[str, int]]] = {part: [] for part in PARTS}
    causes["embeddings"].append(("dropout_masks", (1 - 4) * B * T * d if drop else 0))
    causes["block norms"].append(("norm_kernel", 2 * L * per_norm))
    causes["final norm"].append(("norm_kernel", per_norm))
    causes["attention"] += [
        ("softmax", L * (4 * B * h * T * T + 4 * B * h * T + T * T)),
        ("rope_tables", 2 * 4 * T * d_k * (L - 1) if cfg.positions == "rope" else 0),
        ("dropout_masks", L * ((1 - 8) * B * h * T * T + (1 - 4) * B * T * d) if drop else 0),
    ]
    causes["FFN"] += [
        ("silu_kernel", L * 4 * B * T * d_ff if cfg.ffn in ("swiglu", "silu") else 0),
        ("dropout_masks", L * (1 - 4) * B * T * d if drop else 0),
    ]
    causes["head + loss"].append(("loss", (4 * B * T * V + 20 * B * T) - (4 * B * T * V + 8 * B * T + 4)))
    return causes


def saved_bytes_vs_hf(hf_config: Mapping[str, Any], *, batch_size: int = 2, seq_len: int = 32,
                      dropout: bool = False) -> list[PartComparison]:
    """Our TransformerLM and HF's model of `hf_config`, saved bytes per part, with the named
    causes of every difference (see the module docstring). float32, meta device."""
    from accounting.hf_config import from_hf_config
    from validation.core import measure
    from validation.hf_reference import hf_training_step

    cfg = from_hf_config(hf_config).replace(attention="naive")
    if not dropout:
        cfg = cfg.replace(dropout=0.0)
    ours = measure(cfg, device="meta", batch_size=batch_size, context_length=seq_len)
    theirs = hf_training_step(hf_config, batch_size=batch_size, seq_len=seq_len, dropout=dropout,
                              attn_implementation="eager", backward=False)
    totals = {part: [0, 0] for part in PARTS}
    for row in ours.rows:
        if row.quantity == "activations (implementation)" and row.component != "total":
            totals[_part(row.component, hf=False)][0] += row.measured
    for component, size in theirs.saved_bytes_by_component.items():
        totals[_part(component, hf=True)][1] += size
    causes = _causes(cfg, batch_size, seq_len)
    return [PartComparison(part, o, t, tuple((c, s) for c, s in causes[part] if s))
            for part, (o, t) in totals.items()]
