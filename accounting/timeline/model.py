"""The model's FFN, blocks (plain and checkpointed), final norm, LM head and loss as the ledger
sees them (accounting.timeline.ledger); the layers they are made of are in
accounting.timeline.layers, whose docstring states the conventions."""

from __future__ import annotations

from collections.abc import Callable

from accounting.timeline.attention import Attention
from accounting.timeline.layers import ACT, BT, COPY, F32, TMP
from accounting.timeline.norms import Norms
from accounting.timeline.ledger import V, d, d_ff


class Model(Attention, Norms):
    """The whole model (accounting.timeline.layers.Layers explains the bookkeeping)."""

    @property
    def stop_at(self) -> str:
        """Where a checkpointed block's recompute stops, at the block's last saved tensor: the
        last norm's c * rstd / x * rms (post-norm), else the second dropout's mask, else w2's
        input."""
        v = self.v
        return "ln2" if v.normed and v.norm_position == "post" else "drop2" if v.dropout else "w2"

    # ---- FFN (model/layers.py SwiGLU / MLP) ----------------------------------------------------
    def ffn_fwd(self, p: str, x: str, free_x: bool) -> str:
        """x (B,T,d) float32 -> w2's output (B,T,d). SwiGLU saves a = W1x, sigmoid(a), silu(a),
        b = W3x and silu(a)*b (w2's input), all (B,T,d_ff); SiLU: a, sigmoid(a), silu(a); GELU:
        a, 0.5a, tanh(.), 1 + tanh(.) and their product (w2's input)."""
        lg, v, s = self.lg, self.v, self.v.s
        a = self.linear_fwd(f"{p}.w1", x, d, d_ff)
        mine: dict = {"a": a}
        if v.ffn == "gelu":
            gate = self._gelu_fwd(p, a, mine)
        else:
            sig = lg.new(f"{p}.sigmoid", s * BT * d_ff, ACT, f"{p}: sigmoid(W1 x)")
            self.save(a)
            gate = lg.new(f"{p}.silu", s * BT * d_ff, TMP, f"{p}: silu(W1 x)")
            mine.update(sigmoid=sig, silu=gate)
            if v.ffn == "swiglu":
                mine["b"] = self.linear_fwd(f"{p}.w3", x, d, d_ff)
                self.save(gate, mine["b"])
                gate = lg.new(f"{p}.gated", s * BT * d_ff, TMP, f"{p}: silu(W1 x) * W3 x")
        mine["w2_in"] = gate
        self.names[p] = mine
        if self.early_stop and self.stop_at == "w2":
            # the recompute ends with w2's saved inputs: its bf16 W copy (autocast), its input
            if v.autocast:
                self.names[f"{p}.w2"] = {"x_f32": False, "w": lg.new(
                    f"{p}.w2.w16", 2 * d * d_ff, COPY, f"{p}.w2: bf16 copy of W")}
            else:
                self.names[f"{p}.w2"] = {"x_f32": False}
            self.save(gate)
            return ""
        y = self.linear_fwd(f"{p}.w2", gate, d_ff, d, x_f32=False)
        if free_x:
            self.release(x)
        return y

    def _gelu_fwd(self, p: str, a: str, mine: dict) -> str:
        """gelu_tanh (model/layers.py): 0.5 a (1 + tanh(c (a + 0.044715 a**3))); pow saves a,
        tanh its output, the last product both factors; `inner` lives to the function's end."""
        lg, n = self.lg, self.v.s * BT * d_ff
        p3 = lg.new(f"{p}.pow3", n, TMP, f"{p}: a**3")
        self.save(a)
        m = lg.new(f"{p}.m", n, TMP, f"{p}: 0.044715 * a**3")
        lg.free(p3)
        ad = lg.new(f"{p}.ad", n, TMP, f"{p}: a + 0.044715 a**3")
        lg.free(m)
        inner = lg.new(f"{p}.inner", n, TMP, f"{p}: sqrt(2/pi) * (.)")
        lg.free(ad)
        mine["half"] = lg.new(f"{p}.half", n, ACT, f"{p}: 0.5 * a")
        mine["tanh"] = lg.new(f"{p}.tanh", n, ACT, f"{p}: tanh(inner)")
        mine["one_t"] = lg.new(f"{p}.one_t", n, ACT, f"{p}: 1 + tanh")
        out = lg.new(f"{p}.gelu", n, TMP, f"{p}: gelu (product)")
        lg.free(inner)
        return out

    def ffn_bwd(self, p: str, g: str, free_x: str | Callable[[], str] | None,
                buffer: str | None = None) -> str:
        """g: the output's gradient (B,T,d) float32, kept (the residual holds it) -> x's.
        free_x: x's last use is w1's dW (float32). `buffer`: a gradient of x already waiting."""
        lg, v, s = self.lg, self.v, self.v.s
        go, free_go = self.branch_grad(p, f"{p.rsplit('.', 1)[0]}.drop2", g)
        g_in = self.linear_bwd(f"{p}.w2", go, d_ff, d, free_go, lambda: self.names[p]["w2_in"])
        mine = self.names[p]  # made by a checkpoint's recompute, if any, by now
        if v.ffn == "gelu":
            ga = self._gelu_bwd(p, g_in, mine)
            return self.linear_bwd(f"{p}.w1", ga, d, d_ff, True, free_x, accumulate=buffer)
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

    def _gelu_bwd(self, p: str, g: str, mine: dict) -> str:
        """Autograd's order (latest node first): the last product's two gradients; 1 + tanh
        passes its through; tanh's backward; 0.5 a's (a's first gradient); the scaling by c;
        the sum passes its gradient to a (added) and to 0.044715 a**3; the scaling; pow's
        backward (3 a**2, in three calls), added to a's. Returns a's gradient."""
        lg, n = self.lg, self.v.s * BT * d_ff
        g_h = lg.new(f"{p}.g_h", n, TMP, f"{p} backward: g * (1 + tanh)")
        g_u = lg.new(f"{p}.g_u", n, TMP, f"{p} backward: g * 0.5a")
        lg.free(g, mine["half"], mine["one_t"])
        g_t = lg.new(f"{p}.g_t", n, TMP, f"{p} backward: tanh_backward")
        lg.free(g_u, mine["tanh"])
        g_a1 = lg.new(f"{p}.g_a1", n, TMP, f"{p} backward: * 0.5 (a's first gradient)")
        lg.free(g_h)
        g_ad = lg.new(f"{p}.g_ad", n, TMP, f"{p} backward: * sqrt(2/pi)")
        lg.free(g_t)
        acc = lg.new(f"{p}.g_a2", n, TMP, f"{p} backward: a's gradient (+ the sum's)")
        lg.free(g_a1)
        g_m = lg.new(f"{p}.g_m", n, TMP, f"{p} backward: * 0.044715")
        lg.free(g_ad)
        x2 = lg.new(f"{p}.x2", n, TMP, f"{p} backward: pow grad (a**2)")
        x3 = lg.new(f"{p}.x3", n, TMP, f"{p} backward: pow grad (* 3)")
        g_p = lg.new(f"{p}.g_p", n, TMP, f"{p} backward: pow grad")
        lg.free(x3, x2, g_m, mine["a"])
        return self.add(f"{p}.g_a", acc, g_p, n, f"{p} backward: a's gradient")

    # ---- the block (model/transformer.py TransformerBlock) -------------------------------------
    def block_fwd(self, p: str, x: str) -> str:
        """x: the block's input (B,T,d) float32 -> its output. pre-norm: z = x + drop1(attn(ln1(x))),
        y = z + drop2(ffn(ln2(z))); post-norm: z = ln1(x + drop1(attn(x))),
        y = ln2(z + drop2(ffn(z))); no norm: z = x + drop1(attn(x)), y = z + drop2(ffn(z)). What
        no call saves dies with its last use (a norm's output with the sublayer under
        autocast; x and z, locals of the block, with the block)."""
        lg, v = self.lg, self.v
        ac = v.autocast
        if v.pre_norm:
            a = self.norm_fwd(f"{p}.ln1", x)
            o = self.attention_fwd(f"{p}.attn", a, free_x=ac)
        else:
            a = None
            o = self.attention_fwd(f"{p}.attn", x, free_x=False)
        if v.dropout:
            o = self.dropout_fwd(f"{p}.drop1", o, BT * d, v.s)
        z = lg.new(f"{p}.z", F32 * BT * d, TMP, f"{p}: x + attn")
        lg.free(o)
        if v.pre_norm:
            n = self.norm_fwd(f"{p}.ln2", z)
            f = self.ffn_fwd(f"{p}.ffn", n, free_x=ac)
            self.names[p] = {"a": a, "n": n}
        else:
            if v.normed:  # post-norm: the residual sum goes through ln1
                z = self.norm_fwd(f"{p}.ln1", z, free_x=True)
            f = self.ffn_fwd(f"{p}.ffn", z, free_x=False)
            self.names[p] = {"x": x, "z": z}
        if f and v.dropout:
            f = self.dropout_fwd(f"{p}.drop2", f, BT * d, v.s, stop=self.stop_at == "drop2")
        if not f:  # a checkpoint's recompute stopped
            return ""
        y = lg.new(f"{p}.y", F32 * BT * d, TMP, f"{p}: z + ffn")
        lg.free(f)
        if v.normed and not v.pre_norm:
            y = self.norm_fwd(f"{p}.ln2", y, last=True, free_x=True)
        self.release(z, *([] if self.checkpointing else [x]))
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
        """The block's backward, whose first node that uses a saved tensor (Layers.unpack)
        first recomputes the block's forward up to its last saved tensor (torch's early stop,
        see stop_at: a pre-norm or norm-free block without dropout skips w2's matmul and the
        residual add, with dropout the second dropout's product; a post-norm one the last
        norm's weight); the input dies with it. When the recompute stops, what it made and did
        not save dies."""
        def recompute() -> None:
            before = set(self.lg.tensors)
            self.early_stop = True
            self.block_fwd(f"{p}'", x)
            self.early_stop = False
            self.release(*[n for n in self.lg.tensors if n not in before])

        self.pending, self.recomputed, self.ckpt_input = recompute, True, x
        gx = self.block_bwd(f"{p}'", g)
        self.recomputed, self.ckpt_input = False, ""
        return gx

    def block_bwd(self, p: str, g: str) -> str:
        """g: the output's gradient (float32) -> the input's. The block's own saved inputs are
        looked up when used (a checkpointed block's recompute makes them on the way)."""
        v = self.v

        def saved(key: str):
            return None if v.autocast else lambda: self.names[p][key]

        if v.pre_norm:
            dn = self.ffn_bwd(f"{p}.ffn", g, saved("n"))
            g_z = self.norm_bwd(f"{p}.ln2", dn, g)
            da = self.attention_bwd(f"{p}.attn", g_z, saved("a"))
            return self.norm_bwd(f"{p}.ln1", da, g_z)
        if v.normed:  # post-norm
            g = self.norm_bwd(f"{p}.ln2", g, None)
        g_z = self.ffn_bwd(f"{p}.ffn", g, saved("z"), buffer=g)
        if v.normed:
            g_z = self.norm_bwd(f"{p}.ln1", g_z, None)
        return self.attention_bwd(f"{p}.attn", g_z, saved("x"), buffer=g_z)

    # ---- final norm, LM head, loss (model/transformer.py, model/loss.py) -----------------------
    def head_fwd(self, x: str) -> str:
        """The last block's output -> logits (B,T,V) in the matmul dtype (not saved)."""
        final = self.v.pre_norm
        n = self.norm_fwd("ln_final", x) if final else x
        logits = self.linear_fwd("lm_head", n, d, V)
        self.release(n, x)  # the forward's locals: what no call saved dies as it returns
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
