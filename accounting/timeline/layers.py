"""The model's layers as the ledger sees them (accounting.timeline.ledger): every allocating aten
call of model/layers.py, model/attention.py and model/rope.py (accounting.timeline.model: the FFN,
blocks, head and loss of model/transformer.py and model/loss.py), in the order torch runs it, with
what it allocates and what dies after it.

Written from the code and checked call by call against MemTracker on tiny CPU models, every
variant (tests/accounting/test_timeline.py). Sizes in bytes; x is (B, T, d) and BT = B*T. Two
precisions (`Variant.autocast`): float32, and bf16 autocast (the trainer's `--dtype bfloat16`), where
every Linear casts its weight to a bf16 working copy (model/layers.py) and autocast casts a float32
input of a matmul to a bf16 copy, per call (q, k and v each keep their own copy of the same input);
matmul outputs and the attention math that follows them are bf16, the residual stream, RMSNorm and
the loss float32. The backward of each call frees what the call saved once its node has run, and
autograd adds two gradients arriving at the same tensor out of place (a new tensor, both freed).
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.timeline.ledger import INDEX, B, T, V, Ledger, PolyElement, d, d_k, h

ACT, COPY, GRAD, TMP = "activations", "weights_bf16_copy", "gradients", "transients"


@dataclass(frozen=True)
class Variant:
    """What the program depends on: the model's switches and the precision. attention="sdpa" is
    torch's fused kernel (CPU flash; the meta device's math decomposition is another program)."""

    norm: str = "rmsnorm"
    norm_position: str = "pre"
    positions: str = "rope"
    ffn: str = "swiglu"
    tie_embeddings: bool = False
    attention: str = "naive"
    autocast: bool = False

    @property
    def s(self) -> int:
        """Bytes per element of matmul outputs and of the attention math on them."""
        return 2 if self.autocast else 4


BT = B * T
F32 = 4


class Layers:
    """Emits the model's calls into `lg`. `names[prefix]` keeps what a module's forward left for
    its backward. A tensor is a transient until a call saves it for backward (`save`), which
    makes it an activation; a tensor made only to be saved is an activation from the start.

    Two shape conditions change which copies torch makes (measured; T > 1 throughout). A
    (B,h,T,d_k) head-split view of a (B,T,d) tensor is a bmm operand without a copy when B = 1
    or h = 1: `fold_copy` = B > 1 and h > 1. Merging heads back, (B,h,T,d_k) -> (B,T,d),
    copies unless h = 1: `merge_copy`. Without RoPE, K^T's gradient from the naive path's bmm
    is copied back into K's layout when B > 1 (`batch_copy`)."""

    def __init__(self, lg: Ledger, v: Variant, batch: bool = True, heads: bool = True):
        self.lg, self.v = lg, v
        self.batch_copy = batch
        self.fold_copy, self.merge_copy = batch and heads, heads
        self.names: dict[str, dict] = {}
        self.checkpointing = False  # blocks run under torch.utils.checkpoint
        self.early_stop = False     # a checkpoint's recompute: stops after its last saved tensor

    def save(self, *names: str) -> None:
        for name in names:
            if self.lg.tensors[name][0] == INDEX[TMP]:
                self.lg.move(name, ACT)

    # ---- Linear: y = x @ W.T (model/layers.py) -----------------------------------------------
    def linear_fwd(self, p: str, x: str, n_in: PolyElement, n_out: PolyElement, x_f32: bool = True) -> str:
        """x (BT, n_in) -> y (BT, n_out), a transient. float32 saves x for dW. autocast: W's bf16
        copy (saved for dx), a bf16 copy of a float32 x (saved for dW; a bf16 x is saved
        itself), a bf16 output."""
        lg, mine = self.lg, {"x_f32": x_f32 and self.v.autocast}
        if self.v.autocast:
            mine["w"] = lg.new(f"{p}.w16", 2 * n_in * n_out, COPY, f"{p}: bf16 copy of W")
        if mine["x_f32"]:
            mine["x"] = lg.new(f"{p}.x16", 2 * BT * n_in, ACT, f"{p}: bf16 copy of its input")
        else:
            self.save(x)
        self.names[p] = mine
        return lg.new(f"{p}.y", self.v.s * BT * n_out, TMP, f"{p}: x @ W.T")

    def linear_bwd(self, p: str, g: str, n_in: PolyElement, n_out: PolyElement, free_g: bool,
                   free_x: str | None, accumulate: str | None = None) -> str:
        """dW = g.T @ x, dx = g @ W; frees g (if its last use) and a saved input whose last
        use this is (`free_x`). Under autocast dx of a cast input and dW go back to float32 (the
        casts' backward). `accumulate`: the gradient already waiting for x (the new dx is added
        to it). Returns x's gradient."""
        lg, v, mine = self.lg, self.v, self.names[p]
        dw = lg.new(f"{p}.dW", v.s * n_in * n_out, TMP, f"{p} backward: dW")
        dx = lg.new(f"{p}.dx", v.s * BT * n_in, TMP, f"{p} backward: dx")
        lg.free(*([g] if free_g else []), *([mine["w"]] if v.autocast else []),
                *([mine["x"]] if mine["x_f32"] else []), *([free_x] if free_x else []))
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
        lg.move(dw, GRAD)
        mine["dW"] = dw
        return dx

    def add(self, name: str, a: str, b: str, nbytes: PolyElement, label: str) -> str:
        """Two gradients of one tensor summed out of place; both die."""
        out = self.lg.new(name, nbytes, TMP, label)
        self.lg.free(a, b)
        return out

    # ---- RMSNorm (model/layers.py), computed in float32 ---------------------------------------
    def norm_fwd(self, p: str, x: str, last: bool = False) -> str:
        """x float32 (B,T,d) (the residual stream is float32 under autocast too, so x.float() is
        x itself). Saves x, rms (B,T,1) and x*rms (B,T,d); returns x*rms*weight (B,T,d)."""
        lg = self.lg
        self.save(x)
        sq = lg.new(f"{p}.sq", F32 * BT * d, TMP, f"{p}: x**2")
        mean = lg.new(f"{p}.mean", F32 * BT, TMP, f"{p}: mean")
        lg.free(sq)
        eps = lg.new(f"{p}.eps", F32 * BT, TMP, f"{p}: + eps")
        lg.free(mean)
        rms = lg.new(f"{p}.rms", F32 * BT, ACT, f"{p}: rsqrt")
        lg.free(eps)
        xr = lg.new(f"{p}.xrms", F32 * BT * d, ACT, f"{p}: x * rms")
        self.names[p] = {"x": x, "rms": rms, "xrms": xr}
        if self.early_stop and last:  # a post-norm block's recompute ends with x * rms
            return ""
        return lg.new(f"{p}.out", F32 * BT * d, TMP, f"{p}: * weight")

    def norm_bwd(self, p: str, g: str, buffer: str | None) -> str:
        """g (B,T,d) float32 -> x's gradient; x dies (the norm is its last user). `buffer`: a
        gradient of x already waiting (the residual's), to which this path's two contributions
        are added one after the other."""
        lg, mine = self.lg, self.names[p]
        g_xr = lg.new(f"{p}.g_xr", F32 * BT * d, TMP, f"{p} backward: g * weight")
        gw = lg.new(f"{p}.gw", F32 * BT * d, TMP, f"{p} backward: g * x*rms")
        dw = lg.new(f"{p}.dW", F32 * d, TMP, f"{p} backward: dW (sum)")
        lg.free(gw, g, mine["xrms"])
        lg.move(dw, GRAD)
        g_x1 = lg.new(f"{p}.g_x1", F32 * BT * d, TMP, f"{p} backward: grad * rms")
        g_rx = lg.new(f"{p}.g_rx", F32 * BT * d, TMP, f"{p} backward: grad * x")
        g_r = lg.new(f"{p}.g_r", F32 * BT, TMP, f"{p} backward: grad of rms")
        lg.free(g_rx, g_xr)
        if buffer:
            g_x1 = self.add(f"{p}.acc1", buffer, g_x1, F32 * BT * d, f"{p} backward: + residual grad")
        r3 = lg.new(f"{p}.r3", F32 * BT, TMP, f"{p} backward: rsqrt grad (pow)")
        r3s = lg.new(f"{p}.r3s", F32 * BT, TMP, f"{p} backward: rsqrt grad (* -1/2)")
        g_m = lg.new(f"{p}.g_m", F32 * BT, TMP, f"{p} backward: rsqrt grad")
        lg.free(r3s, r3, g_r, mine["rms"])
        g_sq = lg.new(f"{p}.g_sq", F32 * BT * d, TMP, f"{p} backward: mean grad")
        lg.free(g_m)
        x1 = lg.new(f"{p}.x1", F32 * BT * d, TMP, f"{p} backward: pow grad (x**1)")
        x2 = lg.new(f"{p}.x2", F32 * BT * d, TMP, f"{p} backward: pow grad (* 2)")
        g_x2 = lg.new(f"{p}.g_x2", F32 * BT * d, TMP, f"{p} backward: pow grad")
        lg.free(x2, x1, g_sq, mine["x"])
        return self.add(f"{p}.g_x", g_x1, g_x2, F32 * BT * d, f"{p} backward: x's gradient")

    # ---- RoPE on q or k (model/rope.py): x (B,h,T,d_k) in the matmul dtype ---------------------
    def rope_fwd(self, p: str, x: str) -> str:
        """cos, sin indexed per call (T, d_k/2) float32 (cast to bf16 under autocast: the copies
        are saved); four products and a difference / sum (B,h,T,d_k/2); stack -> (B,h,T,d_k)
        (a transient until attention saves it). x (the projection's output) dies here."""
        lg, s = self.lg, self.v.s
        tables = []
        for t in ("cos", "sin"):
            if self.v.autocast:
                idx = lg.new(f"{p}.{t}32", F32 * T * d_k // 2, TMP, f"{p}: {t}[positions]")
                tables.append(lg.new(f"{p}.{t}", 2 * T * d_k // 2, ACT, f"{p}: {t} to bf16"))
                lg.free(idx)
            else:
                tables.append(lg.new(f"{p}.{t}", F32 * T * d_k // 2, ACT, f"{p}: {t}[positions]"))
        half = s * BT * d // 2
        halves = []
        for what in ("even", "odd"):
            a = lg.new(f"{p}.{what}a", half, TMP, f"{p}: {what} product 1")
            b = lg.new(f"{p}.{what}b", half, TMP, f"{p}: {what} product 2")
            halves.append(lg.new(f"{p}.{what}", half, TMP, f"{p}: {what} half"))
            lg.free(a, b)
        out = lg.new(f"{p}.out", s * BT * d, TMP, f"{p}: stack")
        lg.free(*halves, x)
        self.names[p] = {"cos": tables[0], "sin": tables[1]}
        return out

    def rope_bwd(self, p: str, g: str) -> str:
        """g (B,h,T,d_k) (dies here) -> x's gradient (B,h,T,d_k), contiguous."""
        lg, s, mine = self.lg, self.v.s, self.names[p]
        half = s * BT * d // 2
        m1 = lg.new(f"{p}.m1", half, TMP, f"{p} backward: g_odd * cos")
        m2 = lg.new(f"{p}.m2", half, TMP, f"{p} backward: g_odd * sin")
        neg = lg.new(f"{p}.neg", half, TMP, f"{p} backward: -g_even")
        m3 = lg.new(f"{p}.m3", half, TMP, f"{p} backward: -g_even * sin")
        lg.free(neg, mine["sin"])
        g_odd = self.add(f"{p}.g_odd", m1, m3, half, f"{p} backward: odd half's gradient")
        m4 = lg.new(f"{p}.m4", half, TMP, f"{p} backward: g_even * cos")
        lg.free(g, mine["cos"])
        g_even = self.add(f"{p}.g_even", m2, m4, half, f"{p} backward: even half's gradient")
        s1 = lg.new(f"{p}.s1", s * BT * d, TMP, f"{p} backward: odd slice into (B,h,T,d_k)")
        lg.free(g_odd)
        s2 = lg.new(f"{p}.s2", s * BT * d, TMP, f"{p} backward: even slice into (B,h,T,d_k)")
        lg.free(g_even)
        return self.add(f"{p}.g_x", s1, s2, s * BT * d, f"{p} backward: x's gradient")

    # ---- Embedding (model/layers.py): weight[token_ids] --------------------------------------
    def embedding_fwd(self) -> str:
        """(B,T,d) float32 (indexing is not autocast); saves the token ids (the batch)."""
        return self.lg.new("embedding.out", F32 * BT * d, TMP, "token_embeddings: weight[ids]")

    def embedding_bwd(self, g: str) -> None:
        """dW = zeros (V,d) with g's rows added (index_put, out of place): g dies; dW becomes the
        weight's gradient, or, tied, is added to the LM head's (a new tensor, both die)."""
        lg = self.lg
        zeros = lg.new("embedding.zeros", F32 * V * d, TMP, "token_embeddings backward: zeros (V,d)")
        dw = lg.new("embedding.dW", F32 * V * d, TMP, "token_embeddings backward: index_put")
        lg.free(zeros, g)
        if self.v.tie_embeddings:
            lg.new("embedding.dW_acc", F32 * V * d, GRAD, "token_embeddings backward: + lm_head's dW")
            lg.free(dw, self.names["lm_head"]["dW"])
        else:
            lg.move(dw, GRAD)

    # ---- causal self-attention (model/attention.py) -------------------------------------------
    def attention_fwd(self, p: str, x: str, free_x: bool) -> str:
        """x (B,T,d) float32 -> output_proj's output (B,T,d). free_x: x dies with the call
        (autocast, pre-norm: only the projections' bf16 copies of x are saved)."""
        lg, v, s = self.lg, self.v, self.v.s
        rope, sdpa = v.positions == "rope", v.attention == "sdpa"
        q, k, val = (self.linear_fwd(f"{p}.{n}_proj", x, d, d) for n in ("q", "k", "v"))
        mine: dict = {"v": val}
        if rope:
            mine["positions"] = lg.new(f"{p}.positions", 8 * T, TMP, f"{p}: arange(T) positions")
            q = self.rope_fwd(f"{p}.rope_q", q)
            k = self.rope_fwd(f"{p}.rope_k", k)
        mine["q"], mine["k"] = q, k
        self.names[p] = mine
        out = self._sdpa_fwd(p, mine) if sdpa else self._naive_fwd(p, mine)
        merged = out
        if self.merge_copy and not (sdpa and not rope):
            # the kernel's output follows q's layout: with RoPE q is (B,h,T,d_k) contiguous, so
            # merging heads copies; without, q is a view of (B,T,h,d_k) and the merge is a view
            merged = lg.new(f"{p}.merged", s * BT * d, TMP, f"{p}: merge heads (copy)")
            if not sdpa:
                lg.free(out)
        mine["merged"] = merged
        y = self.linear_fwd(f"{p}.output_proj", merged, d, d, x_f32=False)
        dead = [mine["positions"]] if rope else []
        dead += [x] if free_x else []
        dead += [q, k] if mine.get("qk_dead") else []
        dead += [val] if mine.get("v_dead") else []
        lg.free(*dead)
        return y

    def _naive_fwd(self, p: str, mine: dict) -> str:
        lg, s, rope = self.lg, self.v.s, self.v.positions == "rope"
        ones = lg.new(f"{p}.ones", T * T, TMP, f"{p}: ones (T,T) bool")
        mask = lg.new(f"{p}.mask", T * T, TMP, f"{p}: tril mask")
        lg.free(ones)
        if self.fold_copy and not rope:
            # q and k^T are head-split views: bmm folds (B, h) by copying them (and keeps q, k)
            mine["qk_dead"] = True
            mine["q"] = lg.new(f"{p}.q_c", s * BT * d, ACT, f"{p}: Q contiguous (bmm operand)")
            mine["k"] = lg.new(f"{p}.k_c", s * BT * d, ACT, f"{p}: K^T contiguous (bmm operand)")
        self.save(mine["q"], mine["k"])
        qk = lg.new(f"{p}.qk", s * BT * h * T, TMP, f"{p}: Q K^T")
        scaled = lg.new(f"{p}.scaled", s * BT * h * T, TMP, f"{p}: * scale")
        lg.free(qk)
        inf = lg.new(f"{p}.inf", s, TMP, f"{p}: -inf scalar")
        self.save(mask)
        scores = lg.new(f"{p}.scores", s * BT * h * T, TMP, f"{p}: where(mask, scores, -inf)")
        lg.free(inf, scaled)
        mx = lg.new(f"{p}.max", s * BT * h, TMP, f"{p}: row max")
        shifted = lg.new(f"{p}.shifted", s * BT * h * T, TMP, f"{p}: scores - max")
        lg.free(mx)
        mine["exp"] = lg.new(f"{p}.exp", s * BT * h * T, ACT, f"{p}: exp")
        mine["sum"] = lg.new(f"{p}.sum", s * BT * h, ACT, f"{p}: row sum")
        mine["probs"] = lg.new(f"{p}.probs", s * BT * h * T, ACT, f"{p}: probs")
        mine["mask"] = mask
        lg.free(shifted)
        if self.fold_copy:
            mine["v_dead"] = True
            mine["v_op"] = lg.new(f"{p}.v_c", s * BT * d, ACT, f"{p}: V contiguous (bmm operand)")
        else:
            mine["v_op"] = mine["v"]
            self.save(mine["v"])
        out = lg.new(f"{p}.pv", s * BT * d, TMP, f"{p}: probs @ V")
        lg.free(scores)
        return out

    def _sdpa_fwd(self, p: str, mine: dict) -> str:
        """torch's CPU flash kernel: saves q, k, v, its output (B,h,T,d_k) and the logsumexp
        (B,h,T) float32 (its own buffers are not visible to a dispatch-level tracker)."""
        lg, s = self.lg, self.v.s
        self.save(mine["q"], mine["k"], mine["v"])
        mine["lse"] = lg.new(f"{p}.lse", F32 * BT * h, ACT, label="")
        mine["out"] = lg.new(f"{p}.sdpa", s * BT * d, ACT, f"{p}: scaled_dot_product_attention")
        return mine["out"]

    def attention_bwd(self, p: str, g: str, free_x: str | None, buffer: str | None = None) -> str:
        """g: the output's gradient (B,T,d) float32, kept (the residual holds it) -> x's gradient
        (the v, k, q projections' dx summed, in that order). free_x: x's last use is q_proj's
        dW (float32). `buffer`: a gradient of x already waiting (post-norm, no norm)."""
        lg, v, s, mine = self.lg, self.v, self.v.s, self.names[p]
        rope, sdpa = v.positions == "rope", v.attention == "sdpa"
        go = g
        if v.autocast:
            go = lg.new(f"{p}.g16", 2 * BT * d, TMP, f"{p} backward: output grad to bf16")
        merged_dies = mine["merged"] != mine.get("out")
        dm = self.linear_bwd(f"{p}.output_proj", go, d, d, v.autocast,
                             mine["merged"] if merged_dies else None)
        if sdpa:
            gq, gk, gv = self._sdpa_bwd(p, mine, dm)
        else:
            gq, gk, gv = self._naive_bwd(p, mine, dm)
        if rope:
            gk = self.rope_bwd(f"{p}.rope_k", gk)
            gq = self.rope_bwd(f"{p}.rope_q", gq)
        # merging a (B,h,T,d_k) gradient back to (B,T,d) copies unless it already has the
        # input's (B,T,h,d_k) layout: sdpa writes q's, k's, v's gradients in their inputs'
        # layouts; bmm's gradient for k^T is copied when B > 1
        copies = {"v": self.merge_copy and not sdpa,
                  "k": self.merge_copy if rope else (self.batch_copy and not sdpa),
                  "q": self.merge_copy and (rope or not sdpa)}
        dx = buffer
        for name, gg in (("v", gv), ("k", gk), ("q", gq)):
            c = gg
            if copies[name]:
                c = lg.new(f"{p}.{name}_merge", s * BT * d, TMP, f"{p} backward: {name} grad merged (copy)")
                lg.free(gg)
            dx = self.linear_bwd(f"{p}.{name}_proj", c, d, d, True, free_x if name == "q" else None,
                                 accumulate=dx)
        return dx

    def _naive_bwd(self, p: str, mine: dict, dm: str) -> tuple[str, str, str]:
        lg, s = self.lg, self.v.s
        g = dm
        if self.fold_copy:
            g = lg.new(f"{p}.g_heads", s * BT * d, TMP, f"{p} backward: split heads (copy)")
            lg.free(dm)
        gv = lg.new(f"{p}.gv", s * BT * d, TMP, f"{p} backward: probs^T @ g (V's grad)")
        gp = lg.new(f"{p}.gp", s * BT * h * T, TMP, f"{p} backward: g @ V^T (probs' grad)")
        lg.free(g, mine["v_op"], mine["probs"])
        a = lg.new(f"{p}.da", s * BT * h * T, TMP, f"{p} backward: softmax div grad 1")
        b = lg.new(f"{p}.db", s * BT * h * T, TMP, f"{p} backward: softmax div grad 2")
        c = lg.new(f"{p}.dc", s * BT * h * T, TMP, f"{p} backward: softmax div grad 3 (neg)")
        e = lg.new(f"{p}.de", s * BT * h * T, TMP, f"{p} backward: softmax div grad 4")
        lg.free(c, b, a)
        ge = lg.new(f"{p}.ge", s * BT * h * T, TMP, f"{p} backward: grad of exp (g / sum)")
        gs = lg.new(f"{p}.gs", s * BT * h, TMP, f"{p} backward: grad of the row sum")
        lg.free(e, gp, mine["sum"])
        ge = self.add(f"{p}.ge_acc", ge, gs, s * BT * h * T, f"{p} backward: exp's gradient")
        gx = lg.new(f"{p}.gx", s * BT * h * T, TMP, f"{p} backward: * exp")
        lg.free(ge, mine["exp"])
        inf = lg.new(f"{p}.g_inf", s, TMP, f"{p} backward: where's zero scalar")
        gw = lg.new(f"{p}.gw", s * BT * h * T, TMP, f"{p} backward: where(mask, g, 0)")
        lg.free(inf, gx, mine["mask"])
        gsc = lg.new(f"{p}.gsc", s * BT * h * T, TMP, f"{p} backward: * scale")
        lg.free(gw)
        gk = lg.new(f"{p}.gk", s * BT * d, TMP, f"{p} backward: Q^T @ g (K's grad)")
        gq = lg.new(f"{p}.gq", s * BT * d, TMP, f"{p} backward: g @ K (Q's grad)")
        lg.free(gsc, mine["q"], mine["k"])
        return gq, gk, gv

    def _sdpa_bwd(self, p: str, mine: dict, dm: str) -> tuple[str, str, str]:
        """One kernel call: q's, k's and v's gradients, each in its input's layout."""
        lg, s = self.lg, self.v.s
        gq = lg.new(f"{p}.gq", s * BT * d, TMP, label="")
        gk = lg.new(f"{p}.gk", s * BT * d, TMP, label="")
        gv = lg.new(f"{p}.gv", s * BT * d, TMP, f"{p} backward: scaled_dot_product_attention")
        lg.free(dm, mine["q"], mine["k"], mine["v"], mine["lse"], mine["out"])
        return gq, gk, gv
