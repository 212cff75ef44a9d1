"""The model's basic layers as the ledger sees them (accounting.timeline.ledger): every allocating
aten call of model/layers.py's Linear, Embedding, LearnedPositions and Dropout, in the order torch
runs it, with what it allocates and what dies after it; the bookkeeping every layer shares (saved
tensors, checkpointed blocks' recompute). The norms are in accounting.timeline.norms, attention and
RoPE in accounting.timeline.attention, the FFN, blocks, head and loss in accounting.timeline.model.

Written from the code and checked call by call against MemTracker on tiny CPU models, every
variant (tests/accounting/test_timeline.py). Sizes in bytes; x is (B, T, d) and BT = B*T. Two
precisions (`Variant.autocast`): float32, and bf16 autocast (the trainer's `--dtype bfloat16`), where
every Linear casts its weight (and its bias) to a bf16 working copy (model/layers.py) and autocast
casts a float32 input of a matmul to a bf16 copy, per call (q, k and v each keep their own copy of
the same input); matmul outputs and the attention math that follows them are bf16, the residual
stream, the norms and the loss float32. The backward of each call frees what the call saved once
its node has run, and autograd adds two gradients arriving at the same tensor out of place (a new
tensor, both freed). A tensor no call saves dies with its last Python reference (a module's local
variables live until its forward returns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounting.timeline.ledger import INDEX, B, C, T, V, Ledger, PolyElement, d

ACT, COPY, GRAD, TMP = "activations", "weights_bf16_copy", "gradients", "transients"


@dataclass(frozen=True)
class Variant:
    """What the program depends on: the model's switches and the precision. `bias` is the
    config's ("none" | "qkv" | "attention" | "all"); `dropout`: p > 0 (the bytes do not depend on
    p); `gqa`: h_kv < h. attention="sdpa" is torch's fused kernel (CPU flash), or with
    `sdpa_math` its math decomposition (what torch runs on the meta device and, with dropout, on
    CPU). `gradient_buckets`: the step of one DDP rank (accounting.timeline.core): a tied matrix's
    gradient from the LM head waits in autograd's input buffer (a transient) until the embedding's
    is added, and their sum goes into DDP's bucket."""

    norm: str = "rmsnorm"
    norm_position: str = "pre"
    positions: str = "rope"
    ffn: str = "swiglu"
    tie_embeddings: bool = False
    attention: str = "naive"
    autocast: bool = False
    bias: str = "none"
    dropout: bool = False
    gqa: bool = False
    sdpa_math: bool = False
    gradient_buckets: bool = False

    @property
    def s(self) -> int:
        """Bytes per element of matmul outputs and of the attention math on them."""
        return 2 if self.autocast else 4

    @property
    def qkv_bias(self) -> bool:
        return self.bias != "none"

    @property
    def out_bias(self) -> bool:
        return self.bias in ("attention", "all")

    @property
    def ffn_bias(self) -> bool:
        return self.bias == "all"

    @property
    def normed(self) -> bool:
        return self.norm != "none"

    @property
    def pre_norm(self) -> bool:
        """A pre-norm block with a norm (and so a final norm before the LM head)."""
        return self.normed and self.norm_position == "pre"


BT = B * T
F32 = 4


class Layers:
    """Emits the model's calls into `lg`. `names[prefix]` keeps what a module's forward left for
    its backward. A tensor is a transient until a call saves it for backward (`save`), which
    makes it an activation; a tensor made only to be saved is an activation from the start.

    Shape conditions change which copies torch makes (measured; T > 1 throughout). A
    (B,h,T,d_k) head-split view of a (B,T,d) tensor is a bmm operand without a copy when B = 1
    or h = 1: `fold_copy` = B > 1 and h > 1. Merging heads back, (B,h,T,d_k) -> (B,T,d),
    copies unless h = 1: `merge_copy` (and for k and v under grouped-query attention unless
    h_kv = 1: `kv_merge_copy`). Without RoPE, K^T's gradient from the naive path's bmm is copied
    back into K's layout when B > 1 (`batch_copy`)."""

    def __init__(self, lg: Ledger, v: Variant, batch: bool = True, heads: bool = True,
                 kv_heads: bool = True):
        self.lg, self.v = lg, v
        self.batch_copy = batch
        self.fold_copy, self.merge_copy = batch and heads, heads
        self.kv_merge_copy = kv_heads if v.gqa else heads
        self.names: dict[str, dict] = {}
        self.checkpointing = False  # blocks run under torch.utils.checkpoint
        self.early_stop = False     # a checkpoint's recompute: stops after its last saved tensor
        self.pending = None         # a checkpoint's recompute, run at the first saved tensor's use
        self.recomputed = False     # in a checkpointed block's backward (see `dies_in_node`)
        self.ckpt_input = ""        # that block's input, which the checkpoint keeps

    def unpack(self) -> None:
        """A backward node is about to use a saved tensor: in a checkpointed block whose
        recompute has not run yet, torch runs it now (the nodes before, which use no saved
        tensor, ran without it: a residual's cast of the gradient, a dropout's division, a
        bias's gradient)."""
        if self.pending:
            run, self.pending = self.pending, None
            run()

    def save(self, *names: str) -> None:
        for name in names:
            if self.lg.tensors[name][0] == INDEX[TMP]:
                self.lg.move(name, ACT)

    def release(self, *names: str) -> None:
        """The last reference to each tensor goes: it dies unless a call saved it."""
        for name in names:
            if name in self.lg.tensors and self.lg.tensors[name][0] == INDEX[TMP]:
                self.lg.free(name)

    def add(self, name: str, a: str, b: str, nbytes: PolyElement, label: str) -> str:
        """Two gradients of one tensor summed out of place; both die."""
        out = self.lg.new(name, nbytes, TMP, label)
        self.lg.free(a, b)
        return out

    # ---- Linear: y = x @ W.T (+ b) (model/layers.py) -------------------------------------------
    def linear_fwd(self, p: str, x: str, n_in: PolyElement, n_out: PolyElement, x_f32: bool = True
                   ) -> str:
        """x (BT, n_in) -> y (BT, n_out), a transient. float32 saves x for dW. autocast: W's bf16
        copy (saved for dx), a bf16 copy of a float32 x (saved for dW; a bf16 x is saved
        itself), a bf16 output. With a bias (`has_bias`): y + b, a new tensor (y dies; the add
        saves nothing), under autocast with b's bf16 copy, which dies with the add."""
        lg, mine = self.lg, {"x_f32": x_f32 and self.v.autocast}
        if self.v.autocast:
            mine["w"] = lg.new(f"{p}.w16", 2 * n_in * n_out, COPY, f"{p}: bf16 copy of W")
        if mine["x_f32"]:
            mine["x"] = lg.new(f"{p}.x16", 2 * BT * n_in, ACT, f"{p}: bf16 copy of its input")
        else:
            self.save(x)
        self.names[p] = mine
        y = lg.new(f"{p}.y", self.v.s * BT * n_out, TMP, f"{p}: x @ W.T")
        if not self.has_bias(p):
            return y
        b16 = lg.new(f"{p}.b16", 2 * n_out, COPY, f"{p}: bf16 copy of b") if self.v.autocast else None
        out = lg.new(f"{p}.yb", self.v.s * BT * n_out, TMP, f"{p}: + b")
        lg.free(y, *([b16] if b16 else []))
        return out

    def linear_bwd(self, p: str, g: str, n_in: PolyElement, n_out: PolyElement, free_g: bool,
                   free_x: str | Callable[[], str] | None, accumulate: str | None = None,
                   copy_g: str = "") -> str:
        """dW = g.T @ x, dx = g @ W; frees g (if its last use) and a saved input whose last
        use this is (`free_x`, or a function that names it when called). Under autocast dx of a
        cast input and dW go back to float32 (the casts' backward). `accumulate`: the gradient
        already waiting for x (the new dx is added to it). A bias's gradient comes first: g
        summed over B and T (in g's dtype; to float32 under autocast). `copy_g` (a label): g is
        a (B,T,n_out) view that flattening to (BT, n_out) copies (after the bias's gradient); g
        dies with the copy. Returns x's gradient."""
        lg, v = self.lg, self.v
        if self.has_bias(p):
            db = lg.new(f"{p}.db", v.s * n_out, TMP, f"{p} backward: db (sum)")
            if v.autocast:
                db32 = lg.new(f"{p}.db32", F32 * n_out, TMP, f"{p} backward: db to float32")
                lg.free(db)
                db = db32
            lg.move(db, GRAD)
        self.unpack()
        mine = self.names[p]
        free_x = free_x() if callable(free_x) else free_x
        if copy_g:
            c = lg.new(f"{p}.g_copy", v.s * BT * n_out, TMP, copy_g)
            lg.free(g)
            g, free_g = c, True
        dw = lg.new(f"{p}.dW", v.s * n_in * n_out, TMP, f"{p} backward: dW")
        dx = lg.new(f"{p}.dx", v.s * BT * n_in, TMP, f"{p} backward: dx")
        lg.free(*([g] if free_g else []), *([mine["w"]] if v.autocast else []),
                *([mine["x"]] if mine["x_f32"] else []), *([free_x] if free_x else []))
        if p.endswith("q_proj") and not v.pre_norm:
            self.free_ckpt_input()
        if mine["x_f32"]:
            dx32 = lg.new(f"{p}.dx32", F32 * BT * n_in, TMP, f"{p} backward: dx to float32")
            lg.free(dx)
            dx = dx32
        if accumulate:
            dx = self.add(f"{p}.dx_acc", accumulate, dx, F32 * BT * n_in, f"{p} backward: dx accumulated")
        if v.autocast:
            dw32 = lg.new(f"{p}.dW32", F32 * n_in * n_out, TMP, f"{p} backward: dW to float32")
            lg.free(dw)
            dw = dw32
        if not (p == "lm_head" and v.tie_embeddings and v.gradient_buckets):  # else: in flight
            lg.move(dw, GRAD)
        mine["dW"] = dw
        return dx

    def dies_in_node(self, *names: str) -> tuple[str, ...]:
        """Saved tensors whose last use is a node that reduces a gradient after it (sum_to a
        broadcast operand's shape): in a checkpointed block's backward the recomputed tensor's
        last reference is the node's own, so it dies before the reduction (freed here, returns
        ()); otherwise autograd releases it after (returns the names, to free then)."""
        if self.recomputed:
            self.lg.free(*names)
            return ()
        return names

    def free_ckpt_input(self) -> None:
        """The checkpoint keeps its block's input until autograd releases the block's last node
        that saved a tensor (ln1's c * c in a pre-norm LayerNorm block, q_proj's matmul without
        a norm before it; a pre-norm RMSNorm saved the input itself)."""
        if self.recomputed and self.ckpt_input in self.lg.tensors:
            self.lg.free(self.ckpt_input)

    def has_bias(self, p: str) -> bool:
        """Whether the Linear `p` adds a bias (the config's `bias`; never the LM head)."""
        which = p.rsplit(".", 1)[-1]
        if which in ("q_proj", "k_proj", "v_proj"):
            return self.v.qkv_bias
        if which == "output_proj":
            return self.v.out_bias
        return which in ("w1", "w2", "w3") and self.v.ffn_bias

    # ---- Embedding, LearnedPositions (model/layers.py) ------------------------------------------
    def embedding_fwd(self) -> str:
        """weight[ids] (B,T,d) float32 (indexing is not autocast; saves the token ids: the
        batch); learned positions: x + pos_weight[arange(T)] (the int64 positions saved, the
        (T,d) rows a transient); then the embedding dropout."""
        lg = self.lg
        x = lg.new("embedding.out", F32 * BT * d, TMP, "token_embeddings: weight[ids]")
        if self.v.positions == "learned":
            pos = lg.new("positions.ids", 8 * T, ACT, "arange(T) positions")
            rows = lg.new("positions.rows", F32 * T * d, TMP, "position_embeddings: weight[positions]")
            out = lg.new("positions.out", F32 * BT * d, TMP, "position_embeddings: x + rows")
            lg.free(rows, x)
            self.names["positions"] = {"ids": pos}
            x = out
        if self.v.dropout:
            x = self.dropout_fwd("embedding_dropout", x, BT * d, F32)
        return x

    def embedding_bwd(self, g: str) -> None:
        """g: the embedding sum's gradient (dies here). Dropout's backward first; learned
        positions: their gradient g summed over the batch (T,d), scattered into zeros (C,d)
        (index_put, out of place); the token embedding's likewise into zeros (V,d): its dW
        becomes the weight's gradient, or, tied, is added to the LM head's (a new tensor, both
        die)."""
        lg = self.lg
        if self.v.dropout:
            g = self.dropout_bwd("embedding_dropout", g, BT * d, F32, free_g=True)
        if self.v.positions == "learned":
            rows = lg.new("positions.g_rows", F32 * T * d, TMP, "position_embeddings backward: sum over B")
            zeros = lg.new("positions.zeros", F32 * C * d, TMP, "position_embeddings backward: zeros (C,d)")
            dw = lg.new("positions.dW", F32 * C * d, TMP, "position_embeddings backward: index_put")
            lg.free(zeros, rows, self.names["positions"]["ids"])
            lg.move(dw, GRAD)
        zeros = lg.new("embedding.zeros", F32 * V * d, TMP, "token_embeddings backward: zeros (V,d)")
        dw = lg.new("embedding.dW", F32 * V * d, TMP, "token_embeddings backward: index_put")
        lg.free(zeros, g)
        if self.v.tie_embeddings:
            kept = TMP if self.v.gradient_buckets else GRAD  # DDP: the sum is copied into its bucket
            acc = lg.new("embedding.dW_acc", F32 * V * d, kept, "token_embeddings backward: + lm_head's dW")
            lg.free(dw, self.names["lm_head"]["dW"])
            if self.v.gradient_buckets:
                lg.free(acc)
        else:
            lg.move(dw, GRAD)

    # ---- Dropout (model/layers.py): x * (rand >= p) / (1 - p) ----------------------------------
    def dropout_fwd(self, p: str, x: str, n: PolyElement, s: int, stop: bool = False) -> str:
        """x (n elements of s bytes) -> the dropped x, a transient. torch.rand's float32 draws die
        with the comparison; the bool keep mask is saved (by the product); the product dies
        with the division; x dies with the call (its reference was the argument) unless saved.
        In a checkpoint's recompute that ends with this mask (`stop`), nothing after it runs."""
        lg = self.lg
        r = lg.new(f"{p}.rand", F32 * n, TMP, f"{p}: rand")
        keep = lg.new(f"{p}.keep", n, ACT, f"{p}: keep mask (rand >= p)")
        lg.free(r)
        self.names[p] = {"keep": keep}
        if self.early_stop and stop:
            return ""
        m = lg.new(f"{p}.m", s * n, TMP, f"{p}: x * keep")
        out = lg.new(f"{p}.out", s * n, TMP, f"{p}: / (1 - p)")
        lg.free(m)
        self.release(x)
        return out

    def dropout_bwd(self, p: str, g: str, n: PolyElement, s: int, free_g: bool) -> str:
        """g (n elements, s bytes) -> x's gradient: g / (1 - p), then * keep (the mask dies)."""
        lg = self.lg
        gd = lg.new(f"{p}.g_div", s * n, TMP, f"{p} backward: g / (1 - p)")
        if free_g:
            lg.free(g)
        self.unpack()
        gx = lg.new(f"{p}.g_x", s * n, TMP, f"{p} backward: * keep")
        lg.free(gd, self.names[p]["keep"])
        return gx
