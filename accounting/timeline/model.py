"""The model's FFN, blocks (plain and checkpointed), final norm, LM head and loss as the ledger
sees them (accounting.timeline.ledger); the layers they are made of are in
accounting.timeline.layers, whose docstring states the conventions."""

from __future__ import annotations

from accounting.timeline.layers import ACT, BT, COPY, F32, TMP, Layers
from accounting.timeline.ledger import V, d, d_ff


class Model(Layers):
    """The whole model (accounting.timeline.layers.Layers explains the bookkeeping)."""

    # ---- FFN (model/layers.py SwiGLU / SiLUFFN) ------------------------------------------------
    def ffn_fwd(self, p: str, x: str, free_x: bool) -> str:
        """x (B,T,d) float32 -> w2's output (B,T,d). SwiGLU saves a = W1x, sigmoid(a), silu(a),
        b = W3x and silu(a)*b (w2's input), all (B,T,d_ff); SiLU: a, sigmoid(a), silu(a)."""
        lg, v, s = self.lg, self.v, self.v.s
        a = self.linear_fwd(f"{p}.w1", x, d, d_ff)
        sig = lg.new(f"{p}.sigmoid", s * BT * d_ff, ACT, f"{p}: sigmoid(W1 x)")
        self.save(a)
        gate = lg.new(f"{p}.silu", s * BT * d_ff, TMP, f"{p}: silu(W1 x)")
        mine = {"a": a, "sigmoid": sig, "silu": gate}
        if v.ffn == "swiglu":
            mine["b"] = self.linear_fwd(f"{p}.w3", x, d, d_ff)
            self.save(gate, mine["b"])
            gate = lg.new(f"{p}.gated", s * BT * d_ff, TMP, f"{p}: silu(W1 x) * W3 x")
        mine["w2_in"] = gate
        self.names[p] = mine
        if self.early_stop and not (v.norm == "rmsnorm" and v.norm_position == "post"):
            # the recompute ends with w2's saved inputs: its bf16 W copy (autocast), its input
            if v.autocast:
                self.names[f"{p}.w2"] = {"x_f32": False, "w": lg.new(
                    f"{p}.w2.w16", 2 * d * d_ff, COPY, f"{p}.w2: bf16 copy of W")}
            else:
                self.names[f"{p}.w2"] = {"x_f32": False}
            self.save(gate)
            if free_x:
                lg.free(x)
            return ""
        y = self.linear_fwd(f"{p}.w2", gate, d_ff, d, x_f32=False)
        if free_x:
            lg.free(x)
        return y

    def ffn_bwd(self, p: str, g: str, free_x: str | None, buffer: str | None = None) -> str:
        """g: the output's gradient (B,T,d) float32, kept (the residual holds it) -> x's.
        free_x: x's last use is w1's dW (float32). `buffer`: a gradient of x already waiting."""
        lg, v, s, mine = self.lg, self.v, self.v.s, self.names[p]
        go = g
        if v.autocast:
            go = lg.new(f"{p}.g16", 2 * BT * d, TMP, f"{p} backward: output grad to bf16")
        g_in = self.linear_bwd(f"{p}.w2", go, d_ff, d, v.autocast, mine["w2_in"])
        if v.ffn == "swiglu":
            g_gate = lg.new(f"{p}.g_gate", s * BT * d_ff, TMP, f"{p} backward: g * W3x")
            g_b = lg.new(f"{p}.g_b", s * BT * d_ff, TMP, f"{p} backward: g * silu")
            lg.free(g_in, mine["b"], mine["silu"])
            buffer = self.linear_bwd(f"{p}.w3", g_b, d, d_ff, True, None, accumulate=buffer)
            g_in = g_gate
        ga1 = lg.new(f"{p}.ga1", s * BT * d_ff, TMP, f"{p} backward: g * sigmoid")
        g_sig = lg.new(f"{p}.g_sig", s * BT * d_ff, TMP, f"{p} backward: g * a")
        lg.free(g_in, mine["a"])
        sb = lg.new(f"{p}.sig_bwd", s * BT * d_ff, TMP, f"{p} backward: sigmoid_backward")
        lg.free(g_sig, mine["sigmoid"])
        ga = self.add(f"{p}.ga", ga1, sb, s * BT * d_ff, f"{p} backward: W1x's gradient")
        return self.linear_bwd(f"{p}.w1", ga, d, d_ff, True, free_x, accumulate=buffer)

    # ---- the block (model/transformer.py TransformerBlock) -------------------------------------
    def block_fwd(self, p: str, x: str) -> str:
        """x: the block's input (B,T,d) float32 -> its output. pre-norm: z = x + attn(ln1(x)),
        y = z + ffn(ln2(z)); post-norm: z = ln1(x + attn(x)), y = ln2(z + ffn(z)); no norm:
        z = x + attn(x), y = z + ffn(z). Under autocast what no call saves dies with its last
        use (a norm's output with the sublayer; x and z, used by a residual, with the block)."""
        lg, v = self.lg, self.v
        ac = v.autocast
        if v.norm == "rmsnorm" and v.norm_position == "pre":
            a = self.norm_fwd(f"{p}.ln1", x)
            o = self.attention_fwd(f"{p}.attn", a, free_x=ac)
            z = lg.new(f"{p}.z", F32 * BT * d, TMP, f"{p}: x + attn")
            lg.free(o)
            n = self.norm_fwd(f"{p}.ln2", z)
            f = self.ffn_fwd(f"{p}.ffn", n, free_x=ac)
            self.names[p] = {"a": a, "n": n}
            if self.early_stop:
                return ""
            y = lg.new(f"{p}.y", F32 * BT * d, TMP, f"{p}: z + ffn")
            lg.free(f)
            self.names[p] = {"a": a, "n": n}
            return y
        o = self.attention_fwd(f"{p}.attn", x, free_x=False)
        z = lg.new(f"{p}.z", F32 * BT * d, TMP, f"{p}: x + attn")
        lg.free(o)
        post = v.norm == "rmsnorm"
        if post:  # the residual sum is saved by ln1; z is ln1's output
            z = self.norm_fwd(f"{p}.ln1", z)
        f = self.ffn_fwd(f"{p}.ffn", z, free_x=False)
        self.names[p] = {"x": x, "z": z}
        if self.early_stop and not post:
            if ac:
                lg.free(z)
            return ""
        y = lg.new(f"{p}.y", F32 * BT * d, TMP, f"{p}: z + ffn")
        lg.free(f)
        if post:
            y = self.norm_fwd(f"{p}.ln2", y, last=True)
        if ac:
            lg.free(z, *([] if self.checkpointing else [x]))
        return y

    # ---- per-block activation checkpointing (torch.utils.checkpoint, use_reentrant=False) ------
    def block_fwd_checkpointed(self, p: str, x: str) -> str:
        """The block runs keeping only its input (saved by the checkpoint) and its output. The
        points inside are the plain forward's (an upper bound: torch frees each tensor at its
        last use instead of at the block's end; validation sizes the difference)."""
        before = set(self.lg.tensors)
        y = self.block_fwd(p, x)
        self.lg.free(*[n for n in self.lg.tensors if n not in before and n != y])
        self.save(x)
        return y

    def block_bwd_checkpointed(self, p: str, x: str, g: str) -> str:
        """Recompute the block's forward up to its last saved tensor (torch's early stop: a
        pre-norm or norm-free block skips w2's matmul and the residual add, a post-norm one the
        last norm's weight), then its backward; the input dies with it."""
        self.early_stop = True
        self.block_fwd(f"{p}'", x)
        self.early_stop = False
        gx = self.block_bwd(f"{p}'", g)
        if self.lg.tensors.get(x):
            self.lg.free(x)
        return gx

    def block_bwd(self, p: str, g: str) -> str:
        """g: the output's gradient (float32) -> the input's."""
        v, mine, f32 = self.v, self.names[p], not self.v.autocast
        if v.norm == "rmsnorm" and v.norm_position == "pre":
            dn = self.ffn_bwd(f"{p}.ffn", g, mine["n"] if f32 else None)
            g_z = self.norm_bwd(f"{p}.ln2", dn, g)
            da = self.attention_bwd(f"{p}.attn", g_z, mine["a"] if f32 else None)
            return self.norm_bwd(f"{p}.ln1", da, g_z)
        if v.norm == "rmsnorm":  # post-norm
            g = self.norm_bwd(f"{p}.ln2", g, None)
        g_z = self.ffn_bwd(f"{p}.ffn", g, mine["z"] if f32 else None, buffer=g)
        if v.norm == "rmsnorm":
            g_z = self.norm_bwd(f"{p}.ln1", g_z, None)
        return self.attention_bwd(f"{p}.attn", g_z, mine["x"] if f32 else None, buffer=g_z)

    # ---- final norm, LM head, loss (model/transformer.py, model/loss.py) -----------------------
    def head_fwd(self, x: str) -> str:
        """The last block's output -> logits (B,T,V) in the matmul dtype (not saved)."""
        lg = self.lg
        final = self.v.norm == "rmsnorm" and self.v.norm_position == "pre"
        n = self.norm_fwd("ln_final", x) if final else x
        logits = self.linear_fwd("lm_head", n, d, V)
        if self.v.autocast:
            lg.free(n)
        self.names["head"] = {"n": n, "final": final}
        return logits

    def head_bwd(self, g: str) -> str:
        mine = self.names["head"]
        dn = self.linear_bwd("lm_head", g, d, V, True, None if self.v.autocast else mine["n"])
        return self.norm_bwd("ln_final", dn, None) if mine["final"] else dn

    def loss_fwd(self, logits: str) -> str:
        """cross_entropy: float32 logits (a copy under autocast), shifted = logits - max (the
        max detached), exp(shifted) and its row sums saved, the int64 row numbers saved, the
        targets (the batch's (B,T) tensor) saved. Everything else dies with the call, and the
        caller drops the logits. Returns the loss (a float32 scalar, kept to the step's end)."""
        lg = self.lg
        l32 = logits
        if self.v.autocast:
            l32 = lg.new("loss.logits32", F32 * BT * V, TMP, "cross_entropy: logits.float()")
        mx = lg.new("loss.max", F32 * BT, TMP, "cross_entropy: row max")
        shifted = lg.new("loss.shifted", F32 * BT * V, TMP, "cross_entropy: logits - max")
        lg.free(mx)
        ex = lg.new("loss.exp", F32 * BT * V, ACT, "cross_entropy: exp(shifted)")
        sm = lg.new("loss.sum", F32 * BT, ACT, "cross_entropy: sum of exp")
        log = lg.new("loss.log", F32 * BT, TMP, "cross_entropy: log")
        rows = lg.new("loss.rows", 8 * BT, ACT, "cross_entropy: arange(B*T) row numbers")
        picked = lg.new("loss.picked", F32 * BT, TMP, "cross_entropy: target logits (indexed)")
        diff = lg.new("loss.diff", F32 * BT, TMP, "cross_entropy: log-sum-exp - target")
        loss = lg.new("loss", F32, TMP, "cross_entropy: mean (the loss)")
        lg.free(diff, *([l32] if l32 != logits else []), shifted, log, picked, logits)
        self.names["loss"] = {"exp": ex, "sum": sm, "rows": rows}
        return loss

    def loss_bwd(self) -> tuple[str, str]:
        """-> (the loss's own gradient, kept to the end of backward; the logits' gradient)."""
        lg, mine = self.lg, self.names["loss"]
        one = lg.new("loss.one", F32, TMP, "backward: ones_like(loss)")
        g_mean = lg.new("loss.g_mean", F32 * BT, TMP, "cross_entropy backward: mean grad")
        g_pick = lg.new("loss.g_pick", F32 * BT, TMP, "cross_entropy backward: -grad (target)")
        zeros = lg.new("loss.zeros", F32 * BT * V, TMP, "cross_entropy backward: zeros (B*T,V)")
        g_idx = lg.new("loss.g_idx", F32 * BT * V, TMP, "cross_entropy backward: index_put")
        lg.free(zeros, g_pick, mine["rows"])
        g_log = lg.new("loss.g_log", F32 * BT, TMP, "cross_entropy backward: grad / sum")
        lg.free(g_mean, mine["sum"])
        g_exp = lg.new("loss.g_exp", F32 * BT * V, TMP, "cross_entropy backward: grad * exp")
        lg.free(g_log, mine["exp"])
        g = self.add("loss.g", g_idx, g_exp, F32 * BT * V, "cross_entropy backward: logits' gradient")
        if self.v.autocast:
            g16 = lg.new("loss.g16", 2 * BT * V, TMP, "cross_entropy backward: grad to bf16")
            lg.free(g)
            g = g16
        return one, g
