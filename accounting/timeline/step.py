"""One steady-state training step of model/trainer.py as a ledger program: forward, loss, backward,
gradient clipping, the AdamW step, zero_grad(set_to_none=True).

Before the step (the state the previous step left): the float32 weights, RoPE's cos/sin buffers,
AdamW's m and v, and the batch (token ids and targets, (B,T) int64 each); no gradients (the last
zero_grad set them to None). The blocks: layer 0 and layer L-1 are replayed call by call; the L-2
between them are one aggregated change each way (each exactly a replay of layer 0's), because the
live bytes at a given call of block l are linear in l (forward: every earlier block's saved
tensors; backward: every later block's gradients and every earlier block's saved tensors), so
their maximum over the blocks is at the first or the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from accounting.errors import UserError
from accounting.conventions import OPTIMIZERS
from accounting.timeline.ledger import (
    INDEX, RING, B, C, L, Ledger, Point, PolyElement, T, V, d, d_ff, d_k, difference, kv, scaled,
)
from accounting.timeline.layers import BT, F32, GRAD, TMP, Variant
from accounting.timeline.model import Model



@dataclass(frozen=True)
class StepKey:
    """What one program depends on. `layers`: 1, 2, or 3 for "three or more"."""

    variant: Variant
    optimizer: str = "reference"
    checkpointing: bool = False
    layers: int = 3
    batch: bool = True     # B > 1
    heads: bool = True     # h > 1
    kv_heads: bool = True  # h_kv > 1


def parameter_list(v: Variant) -> list[tuple[str, PolyElement, bool]]:
    """(name, elements, repeated in every block) in model.parameters() order (tied: once)."""
    def linear(name: str, n_in: PolyElement, n_out: PolyElement, bias: bool) -> list:
        return [(f"{name}.weight", n_out * n_in, True)] + ([(f"{name}.bias", n_out, True)]
                                                          if bias else [])

    def norm(name: str, repeated: bool = True) -> list:
        if not v.normed:
            return []
        return [(f"{name}.weight", d, repeated)] + ([(f"{name}.bias", d, repeated)]
                                                    if v.norm == "layernorm" else [])

    attn = "layers.*.attn"
    block = linear(f"{attn}.q_proj", d, d, v.qkv_bias) + linear(f"{attn}.k_proj", d, kv, v.qkv_bias)
    block += linear(f"{attn}.v_proj", d, kv, v.qkv_bias)
    block += linear(f"{attn}.output_proj", d, d, v.out_bias)
    block += norm("layers.*.ln1")
    block += linear("layers.*.ffn.w1", d, d_ff, v.ffn_bias) + linear("layers.*.ffn.w2", d_ff, d, v.ffn_bias)
    block += linear("layers.*.ffn.w3", d, d_ff, v.ffn_bias) if v.ffn == "swiglu" else []
    block += norm("layers.*.ln2")
    out = [("token_embeddings.weight", V * d, False)]
    out += [("position_embeddings.weight", C * d, False)] if v.positions == "learned" else []
    out += block
    out += norm("ln_final", False) if v.pre_norm else []
    out += [] if v.tie_embeddings else [("lm_head.weight", V * d, False)]
    return out


def parameter_count(v: Variant) -> PolyElement:
    return sum((n * (L if rep else 1) for _, n, rep in parameter_list(v)), RING.zero)


@lru_cache(maxsize=128)
def step_points(key: StepKey) -> tuple[Point, ...]:
    """Every point of the step (see accounting.timeline for what a point is)."""
    v, lg = key.variant, Ledger()
    n = parameter_count(v)
    lg.new("weights", F32 * n, "weights", label="")
    if v.positions == "rope":
        lg.new("rope_tables", F32 * C * d_k, "buffers", label="")  # cos, sin (C, d_k/2) float32
    lg.new("adamw_state", 2 * F32 * n, "optimizer_state", label="")
    lg.new("ids", 8 * BT, "batch", label="")
    lg.new("targets", 8 * BT, "batch", label="")
    lg.boundary("start: weights, AdamW state, batch")
    m = Model(lg, v, key.batch, key.heads, key.kv_heads)
    lg.phase = "forward"
    m.checkpointing = key.checkpointing
    logits, inputs = _forward(m, key)
    lg.boundary("forward done: logits")
    lg.phase = "loss"
    m.loss_fwd(logits)
    lg.boundary("loss done")
    lg.phase = "backward"
    one, g = m.loss_bwd()
    _backward(m, key, g, inputs)
    lg.free(one)
    lg.boundary("backward done: every gradient")
    lg.phase = "clip"
    _clip(lg, v)
    lg.boundary("clip done")
    lg.phase = "optimizer"
    _adamw(lg, v, key.optimizer)
    lg.boundary("AdamW step done")
    lg.phase = "zero_grad"
    for name in [k for k, (cat, _) in lg.tensors.items() if cat == INDEX[GRAD]]:
        lg.free(name)
    lg.bulk([-x if i == INDEX[GRAD] else RING.zero for i, x in enumerate(lg.snapshot())])
    lg.boundary("zero_grad(set_to_none=True): gradients freed")  # the loss dies with the caller's step
    return tuple(lg.points)


def _forward(m: Model, key: StepKey) -> tuple[str, tuple[str, str]]:
    """-> (logits, the inputs of layer 0 and layer L-1)."""
    lg = m.lg
    block = m.block_fwd_checkpointed if key.checkpointing else m.block_fwd
    x0 = m.embedding_fwd()
    x = block("layers[0]", x0)
    if key.layers >= 3:
        fwd, _ = _block_deltas(key.variant, key.batch, key.heads, key.kv_heads, key.checkpointing)
        lg.forget(x)  # layer 0's output: the first middle block's input, inside the aggregate
        lg.bulk(scaled(fwd, L - 2))
        out = F32 * B * T * d  # the last middle block's output is named: layer L-1's input
        lg.bulk(_only(TMP, -out))
        x = lg.new("layers[L-2].y", out, TMP, label="")
        lg.boundary("layers[1..L-2] forward (each as layers[0])")
    top = x
    if key.layers >= 2:
        x = block("layers[L-1]", x)
    return m.head_fwd(x), (x0, top)


def _backward(m: Model, key: StepKey, g: str, inputs: tuple[str, str]) -> None:
    lg = m.lg
    if key.checkpointing:
        def block(p: str, x: str, g_: str) -> str:
            return m.block_bwd_checkpointed(p, x, g_)
    else:
        def block(p: str, x: str, g_: str) -> str:
            return m.block_bwd(p, g_)
    g = m.head_bwd(g)
    if key.layers >= 2:
        g = block("layers[L-1]", inputs[1], g)
    if key.layers >= 3:
        _, bwd = _block_deltas(key.variant, key.batch, key.heads, key.kv_heads, key.checkpointing)
        lg.bulk(scaled(bwd, L - 2))  # their gradient in, the same-sized gradient out: renamed
        g = lg.rename(g, "layers[1].g_x")
        lg.boundary("layers[L-2..1] backward (each as layers[L-1])")
    m.embedding_bwd(block("layers[0]", inputs[0], g))


def _only(category: str, size: PolyElement) -> list[PolyElement]:
    return [size if i == INDEX[category] else RING.zero for i in range(len(INDEX))]


@lru_cache(maxsize=64)
def _block_deltas(v: Variant, batch: bool, heads: bool, kv_heads: bool, checkpointing: bool
                  ) -> tuple[tuple[PolyElement, ...], tuple[PolyElement, ...]]:
    """One block's net change in the forward (its saved tensors and output; its input exists)
    and in the backward (its gradients in, its saved tensors and input out; the output's
    gradient replaced by the input's)."""
    lg = Ledger()
    m = Model(lg, v, batch, heads, kv_heads)
    m.checkpointing = checkpointing
    x = lg.new("x", F32 * B * T * d, TMP, label="")
    before = lg.snapshot()
    y = (m.block_fwd_checkpointed if checkpointing else m.block_fwd)("b", x)
    after = lg.snapshot()
    lg.forget(y)  # the block above saves and frees it: not this block's backward change
    g = lg.new("g", F32 * B * T * d, TMP, label="")
    mid = lg.snapshot()
    if checkpointing:
        m.block_bwd_checkpointed("b", x, g)
    else:
        m.block_bwd("b", g)
    return difference(after, before), difference(lg.snapshot(), mid)


def _clip(lg: Ledger, v: Variant) -> None:
    """clip_gradients (model/loss.py): per gradient g, (g.float()**2) (g's size) then its sum (a
    scalar), added to the running total (a scalar, from the second gradient on), then sqrt. One
    point per parameter (a block's parameters stand for every block's: same sizes, same state)."""
    for i, (name, n, _) in enumerate(parameter_list(v)):
        sq = lg.new(f"clip.sq{i}", F32 * n, TMP, label="")
        s = lg.new(f"clip.sum{i}", F32, TMP, label="")
        if i:
            lg.new(f"clip.total{i}", F32, TMP, label="")
        lg.point(f"clip: {name} squared")
        lg.free(sq, s, *([f"clip.total{i}"] if i else []))


def _adamw(lg: Ledger, v: Variant, optimizer: str) -> None:
    """The temporaries of one AdamW step (every other op is in place): reference, one
    parameter's denom = sqrt(v) at a time; foreach, every parameter's at once (one bucket);
    fused, one float32 step scalar (its kernel's own work is not visible)."""
    if optimizer == "reference":
        for name, n, _ in parameter_list(v):
            lg.free(lg.new(f"adamw.denom.{name}", F32 * n, TMP, f"AdamW: sqrt(v) of {name}"))
    elif optimizer == "foreach":
        lg.free(lg.new("adamw.denom", F32 * parameter_count(v), TMP, "AdamW foreach: sqrt(v) of every parameter"))
    elif optimizer == "fused":
        lg.free(lg.new("adamw.step", F32, TMP, "AdamW fused: step scalar"))
    else:
        raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
