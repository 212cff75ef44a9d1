"""Causal self-attention and RoPE as the ledger sees them (model/attention.py, model/rope.py):
the projections, RoPE on q and k, the naive path (scores, mask, softmax, dropout on the weights,
weights @ V; grouped-query attention repeats k and v to h heads), torch's fused sdpa kernel (CPU
flash; grouped-query natively, k and v at h_kv heads), and the backward of each. Conventions as in
accounting.timeline.layers; q is (B,h,T,d_k), k and v (B,h_kv,T,d_k), `kv` = h_kv*d_k bytes wide
per token and element.
"""

from __future__ import annotations

from collections.abc import Callable

from accounting.timeline.layers import ACT, BT, F32, TMP, Layers
from accounting.timeline.ledger import PolyElement, T, d, d_k, h, kv


class Attention(Layers):
    """Layers plus the attention block (accounting.timeline.layers.Layers explains the
    bookkeeping)."""

    # ---- RoPE on q or k (model/rope.py): x (B,heads,T,d_k) in the matmul dtype -----------------
    def rope_fwd(self, p: str, x: str, width: PolyElement) -> str:
        """cos, sin indexed per call (T, d_k/2) float32 (cast to bf16 under autocast: the copies
        are saved); four products and a difference / sum (B,heads,T,d_k/2); stack ->
        (B,heads,T,d_k) (a transient until attention saves it); `width` = heads*d_k. x (the
        projection's output) dies here."""
        lg, s = self.lg, self.v.s
        tables = []
        for t in ("cos", "sin"):
            if self.v.autocast:
                idx = lg.new(f"{p}.{t}32", F32 * T * d_k // 2, TMP, f"{p}: {t}[positions]")
                tables.append(lg.new(f"{p}.{t}", 2 * T * d_k // 2, ACT, f"{p}: {t} to bf16"))
                lg.free(idx)
            else:
                tables.append(lg.new(f"{p}.{t}", F32 * T * d_k // 2, ACT, f"{p}: {t}[positions]"))
        half = s * BT * width // 2
        halves = []
        for what in ("even", "odd"):
            a = lg.new(f"{p}.{what}a", half, TMP, f"{p}: {what} product 1")
            b = lg.new(f"{p}.{what}b", half, TMP, f"{p}: {what} product 2")
            halves.append(lg.new(f"{p}.{what}", half, TMP, f"{p}: {what} half"))
            lg.free(a, b)
        out = lg.new(f"{p}.out", s * BT * width, TMP, f"{p}: stack")
        lg.free(*halves, x)
        self.names[p] = {"cos": tables[0], "sin": tables[1]}
        return out

    def rope_bwd(self, p: str, g: str, width: PolyElement) -> str:
        """g (B,heads,T,d_k) (dies here) -> x's gradient (B,heads,T,d_k), contiguous."""
        lg, s, mine = self.lg, self.v.s, self.names[p]
        half = s * BT * width // 2
        m1 = lg.new(f"{p}.m1", half, TMP, f"{p} backward: g_odd * cos")
        m2 = lg.new(f"{p}.m2", half, TMP, f"{p} backward: g_odd * sin")
        neg = lg.new(f"{p}.neg", half, TMP, f"{p} backward: -g_even")
        m3 = lg.new(f"{p}.m3", half, TMP, f"{p} backward: -g_even * sin")
        lg.free(neg, mine["sin"])
        g_odd = self.add(f"{p}.g_odd", m1, m3, half, f"{p} backward: odd half's gradient")
        m4 = lg.new(f"{p}.m4", half, TMP, f"{p} backward: g_even * cos")
        lg.free(g, mine["cos"])
        g_even = self.add(f"{p}.g_even", m2, m4, half, f"{p} backward: even half's gradient")
        s1 = lg.new(f"{p}.s1", s * BT * width, TMP, f"{p} backward: odd slice into (B,heads,T,d_k)")
        lg.free(g_odd)
        s2 = lg.new(f"{p}.s2", s * BT * width, TMP, f"{p} backward: even slice into (B,heads,T,d_k)")
        lg.free(g_even)
        return self.add(f"{p}.g_x", s1, s2, s * BT * width, f"{p} backward: x's gradient")

    # ---- causal self-attention (model/attention.py) -------------------------------------------
    def attention_fwd(self, p: str, x: str, free_x: bool) -> str:
        """x (B,T,d) float32 -> output_proj's output (B,T,d). free_x: x dies with the call
        (autocast, pre-norm: only the projections' bf16 copies of x are saved)."""
        lg, v, s = self.lg, self.v, self.v.s
        rope, sdpa = v.positions == "rope", v.attention == "sdpa" and not v.sdpa_math
        q = self.linear_fwd(f"{p}.q_proj", x, d, d)
        k = self.linear_fwd(f"{p}.k_proj", x, d, kv)
        val = self.linear_fwd(f"{p}.v_proj", x, d, kv)
        mine: dict = {"v": val}
        if rope:
            mine["positions"] = lg.new(f"{p}.positions", 8 * T, TMP, f"{p}: arange(T) positions")
            q = self.rope_fwd(f"{p}.rope_q", q, d)
            k = self.rope_fwd(f"{p}.rope_k", k, kv)
        mine["q"], mine["k"] = q, k
        self.names[p] = mine
        out = self._sdpa_fwd(p, mine) if sdpa else self._math_fwd(p, mine) if v.sdpa_math \
            else self._naive_fwd(p, mine)
        merged = out
        if self.merge_copy and not (sdpa and not rope):
            # the kernel's output follows q's layout: with RoPE q is (B,h,T,d_k) contiguous, so
            # merging heads copies; without, q is a view of (B,T,h,d_k) and the merge is a view
            merged = lg.new(f"{p}.merged", s * BT * d, TMP, f"{p}: merge heads (copy)")
            if not sdpa:
                lg.free(out)
        mine["merged"] = merged
        y = self.linear_fwd(f"{p}.output_proj", merged, d, d, x_f32=False)
        # the forward's locals die with it: what no call saved is freed
        self.release(*([mine["positions"]] if rope else []), *([x] if free_x else []), q, k, val)
        return y

    def _naive_fwd(self, p: str, mine: dict) -> str:
        lg, v, s, rope = self.lg, self.v, self.v.s, self.v.positions == "rope"
        if v.gqa:
            # k and v repeated to h heads (repeat_interleave: a contiguous clone each); those
            # copies are the bmm operands; k and v themselves die with the attention's forward
            mine["k_rep"] = lg.new(f"{p}.k_rep", s * BT * d, ACT, f"{p}: K repeated to h heads")
            mine["v_op"] = lg.new(f"{p}.v_rep", s * BT * d, ACT, f"{p}: V repeated to h heads")
        ones = lg.new(f"{p}.ones", T * T, TMP, f"{p}: ones (T,T) bool")
        mask = lg.new(f"{p}.mask", T * T, TMP, f"{p}: tril mask")
        lg.free(ones)
        q_op, k_op = mine["q"], mine.get("k_rep", mine["k"])
        if self.fold_copy and not rope:
            # q is a head-split view: bmm folds (B, h) by copying it (and k^T, unless k was
            # repeated into a contiguous tensor), and keeps the copies
            q_op = lg.new(f"{p}.q_c", s * BT * d, ACT, f"{p}: Q contiguous (bmm operand)")
            if not v.gqa:
                k_op = lg.new(f"{p}.k_c", s * BT * d, ACT, f"{p}: K^T contiguous (bmm operand)")
        mine["q_op"], mine["k_op"] = q_op, k_op
        self.save(q_op, k_op)
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
        probs = lg.new(f"{p}.probs", s * BT * h * T, TMP, f"{p}: probs")
        mine["mask"] = mask
        lg.free(shifted)
        if v.dropout:  # the dropped weights, not probs, are the bmm's saved operand
            probs = self.dropout_fwd(f"{p}.attn_dropout", probs, BT * h * T, s)
        self.save(probs)
        mine["probs"] = probs
        if not v.gqa:  # (a repeated v is the operand already)
            if self.fold_copy:
                mine["v_op"] = lg.new(f"{p}.v_c", s * BT * d, ACT, f"{p}: V contiguous (bmm operand)")
            else:
                mine["v_op"] = mine["v"]
                self.save(mine["v"])
        out = lg.new(f"{p}.pv", s * BT * d, TMP, f"{p}: probs @ V")
        lg.free(scores)
        return out

    def _sdpa_fwd(self, p: str, mine: dict) -> str:
        """torch's CPU flash kernel: saves q, k, v (k and v at h_kv heads), its output
        (B,h,T,d_k) and the logsumexp (B,h,T) float32 (its own buffers are not visible to a
        dispatch-level tracker)."""
        lg, s = self.lg, self.v.s
        self.save(mine["q"], mine["k"], mine["v"])
        mine["lse"] = lg.new(f"{p}.lse", F32 * BT * h, ACT, label="")
        mine["out"] = lg.new(f"{p}.sdpa", s * BT * d, ACT, f"{p}: scaled_dot_product_attention")
        return mine["out"]

    def _math_fwd(self, p: str, mine: dict) -> str:
        """torch's math decomposition of sdpa (aten's _scaled_dot_product_attention_math: what
        torch runs on the meta device and, with dropout, on CPU), in float32 whatever the input
        dtype (bf16 q, k, v are upcast first): q and k^T each scaled by sqrt(scale), a float32
        causal mask (where(tril, 0, -inf)) added to q k^T, _safe_softmax (saves its output),
        dropout as a float32 noise tensor (saved) times the weights, weights @ v; the output cast
        back to bf16 under autocast (with the weights' cast, which dies at once). k and v are
        repeated to h heads under grouped-query attention. The function's locals (the upcasts,
        the scaled q, the float mask, the repeats) die as it returns, unless saved."""
        lg, v, rope, n = self.lg, self.v, self.v.positions == "rope", BT * h * T
        q, k, val = mine["q"], mine["k"], mine["v"]
        local = []
        if v.autocast:
            q = lg.new(f"{p}.q32", F32 * BT * d, TMP, f"{p}: q to float32")
            k = lg.new(f"{p}.k32", F32 * BT * kv, TMP, f"{p}: k to float32")
            val = lg.new(f"{p}.v32", F32 * BT * kv, TMP, f"{p}: v to float32")
            local += [q, k, val]
        qs = lg.new(f"{p}.qs", F32 * BT * d, TMP, f"{p}: q * sqrt(scale)")
        ones = lg.new(f"{p}.ones", T * T, TMP, f"{p}: ones (T,T) bool")
        tril = lg.new(f"{p}.tril", T * T, TMP, f"{p}: tril mask")
        lg.free(ones)
        s1 = lg.new(f"{p}.ninf", F32, TMP, f"{p}: -inf scalar")
        s2 = lg.new(f"{p}.zero", F32, TMP, f"{p}: 0 scalar")
        maskf = lg.new(f"{p}.maskf", F32 * T * T, TMP, f"{p}: float mask (where)")
        lg.free(tril, s1, s2)
        local += [qs, maskf]
        if v.gqa:
            k = lg.new(f"{p}.k_rep", F32 * BT * d, TMP, f"{p}: K repeated to h heads")
            val = lg.new(f"{p}.v_rep", F32 * BT * d, TMP, f"{p}: V repeated to h heads")
            local += [k, val]
        ks = lg.new(f"{p}.ks", F32 * BT * d, TMP, f"{p}: k^T * sqrt(scale)")
        fold = self.fold_copy and not rope
        q_op = lg.new(f"{p}.q_c", F32 * BT * d, ACT, f"{p}: Q contiguous (bmm operand)") if fold else qs
        k_op = lg.new(f"{p}.k_c", F32 * BT * d, ACT, f"{p}: K^T contiguous (bmm operand)") \
            if fold and not v.gqa else ks
        self.save(q_op, k_op)
        scores = lg.new(f"{p}.qk", F32 * n, TMP, f"{p}: Q K^T")
        self.release(ks)
        added = lg.new(f"{p}.added", F32 * n, TMP, f"{p}: + mask")
        lg.free(scores)
        probs = lg.new(f"{p}.probs", F32 * n, ACT, f"{p}: _safe_softmax")
        lg.free(added)
        mine.update(q_op=q_op, k_op=k_op, probs=probs, dropped=probs)
        if v.dropout:
            mine["noise"] = lg.new(f"{p}.noise", F32 * n, ACT, f"{p}: dropout noise (bernoulli, / (1 - p))")
            mine["dropped"] = lg.new(f"{p}.dropped", F32 * n, ACT, f"{p}: weights * noise")
        if v.autocast:  # the returned pair's second element, cast first (then dropped)
            local.append(lg.new(f"{p}.w16", 2 * n, TMP, f"{p}: weights to bf16 (unused output)"))
        if self.fold_copy and not v.gqa:
            mine["v_op"] = lg.new(f"{p}.v_c", F32 * BT * d, ACT, f"{p}: V contiguous (bmm operand)")
        else:
            mine["v_op"] = val
            self.save(val)
        out = lg.new(f"{p}.pv", F32 * BT * d, TMP, f"{p}: weights @ V")
        if v.autocast:
            out16 = lg.new(f"{p}.out16", 2 * BT * d, TMP, f"{p}: output to bf16")
            lg.free(out)
            out = out16
        self.release(*local)
        return out

    def attention_bwd(self, p: str, g: str, free_x: str | Callable[[], str] | None,
                      buffer: str | None = None) -> str:
        """g: the output's gradient (B,T,d) float32, kept (the residual holds it) -> x's gradient
        (the v, k, q projections' dx summed, in that order). free_x: x's last use is q_proj's
        dW (float32). `buffer`: a gradient of x already waiting (post-norm, no norm)."""
        lg, v, s, mine = self.lg, self.v, self.v.s, self.names[p]
        rope, sdpa = v.positions == "rope", v.attention == "sdpa" and not v.sdpa_math
        go, free_go = self.branch_grad(p, f"{p.rsplit('.', 1)[0]}.drop1", g)
        merged_dies = mine["merged"] != mine.get("out")
        dm = self.linear_bwd(f"{p}.output_proj", go, d, d, free_go,
                             mine["merged"] if merged_dies else None)
        if sdpa:
            gq, gk, gv = self._sdpa_bwd(p, mine, dm)
        elif v.sdpa_math:
            gq, gk, gv = self._math_bwd(p, mine, dm)
        else:
            gq, gk, gv = self._naive_bwd(p, mine, dm)
        if rope:
            gk = self.rope_bwd(f"{p}.rope_k", gk, kv)
            gq = self.rope_bwd(f"{p}.rope_q", gq, d)
        # merging a (B,h,T,d_k) gradient back to (B,T,d) copies unless it already has the
        # input's (B,T,h,d_k) layout: sdpa writes q's, k's, v's gradients in their inputs'
        # layouts. Without RoPE the naive path's gradient for k^T (not repeated) is a
        # (B,T,d) view whose flattening to (B*T,d) copies when B > 1: after a bias's gradient
        if v.gqa and not sdpa:  # the naive and the math path
            copies = {"v": self.kv_merge_copy, "k": self.kv_merge_copy, "q": self.merge_copy}
        else:
            copies = {"v": self.kv_merge_copy and not sdpa, "k": self.kv_merge_copy and rope,
                      "q": self.merge_copy and (rope or not sdpa)}
        flat_k = not (rope or sdpa or v.gqa) and self.batch_copy
        widths = {"v": kv, "k": kv, "q": d}
        dx = buffer
        for name, gg in (("v", gv), ("k", gk), ("q", gq)):
            c = gg
            if copies[name]:
                c = lg.new(f"{p}.{name}_merge", s * BT * widths[name], TMP,
                           f"{p} backward: {name} grad merged (copy)")
                lg.free(gg)
            flat = f"{p} backward: k grad flattened (copy)" if name == "k" and flat_k else ""
            dx = self.linear_bwd(f"{p}.{name}_proj", c, d, widths[name], True,
                                 free_x if name == "q" else None, accumulate=dx, copy_g=flat)
        return dx

    def branch_grad(self, p: str, drop: str, g: str) -> tuple[str, bool]:
        """A residual branch's output gradient from the residual's g (float32, kept): cast to
        bf16 under autocast (the branch's output is bf16), through the branch's dropout.
        Returns (the gradient, whether it dies with its first use)."""
        lg, v = self.lg, self.v
        if v.autocast:
            g = lg.new(f"{p}.g16", 2 * BT * d, TMP, f"{p} backward: output grad to bf16")
        if v.dropout:
            g = self.dropout_bwd(drop, g, BT * d, v.s, free_g=v.autocast)
        return g, v.autocast or v.dropout

    def _naive_bwd(self, p: str, mine: dict, dm: str) -> tuple[str, str, str]:
        lg, v, s = self.lg, self.v, self.v.s
        g = dm
        if self.fold_copy:
            g = lg.new(f"{p}.g_heads", s * BT * d, TMP, f"{p} backward: split heads (copy)")
            lg.free(dm)
        gv = lg.new(f"{p}.gv", s * BT * d, TMP, f"{p} backward: probs^T @ g (V's grad)")
        gp = lg.new(f"{p}.gp", s * BT * h * T, TMP, f"{p} backward: g @ V^T (probs' grad)")
        lg.free(g, mine["v_op"], mine["probs"])
        if v.dropout:
            gp = self.dropout_bwd(f"{p}.attn_dropout", gp, BT * h * T, s, free_g=True)
        a = lg.new(f"{p}.da", s * BT * h * T, TMP, f"{p} backward: softmax div grad 1")
        b = lg.new(f"{p}.db", s * BT * h * T, TMP, f"{p} backward: softmax div grad 2")
        c = lg.new(f"{p}.dc", s * BT * h * T, TMP, f"{p} backward: softmax div grad 3 (neg)")
        e = lg.new(f"{p}.de", s * BT * h * T, TMP, f"{p} backward: softmax div grad 4")
        lg.free(c, b, a)
        ge = lg.new(f"{p}.ge", s * BT * h * T, TMP, f"{p} backward: grad of exp (g / sum)")
        row_sum = self.dies_in_node(mine["sum"])
        gs = lg.new(f"{p}.gs", s * BT * h, TMP, f"{p} backward: grad of the row sum")
        lg.free(e, gp, *row_sum)
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
        lg.free(gsc, mine["q_op"], mine["k_op"])
        if v.gqa:  # the repeats' backward: each group's h / h_kv gradients summed
            gvs = lg.new(f"{p}.gv_sum", s * BT * kv, TMP, f"{p} backward: V's repeat (sum)")
            lg.free(gv)
            gks = lg.new(f"{p}.gk_sum", s * BT * kv, TMP, f"{p} backward: K's repeat (sum)")
            lg.free(gk)
            gv, gk = gvs, gks
        return gq, gk, gv

    def _math_bwd(self, p: str, mine: dict, dm: str) -> tuple[str, str, str]:
        """The math path's backward, in float32 (the output's gradient upcast under autocast, the
        inputs' cast back to bf16)."""
        lg, v, n = self.lg, self.v, BT * h * T
        g = dm
        if v.autocast:
            g = lg.new(f"{p}.g32", F32 * BT * d, TMP, f"{p} backward: output grad to float32")
            lg.free(dm)
        if self.fold_copy:
            gh = lg.new(f"{p}.g_heads", F32 * BT * d, TMP, f"{p} backward: split heads (copy)")
            lg.free(g)
            g = gh
        gv = lg.new(f"{p}.gv", F32 * BT * d, TMP, f"{p} backward: weights^T @ g (V's grad)")
        gw = lg.new(f"{p}.gw", F32 * n, TMP, f"{p} backward: g @ V^T (weights' grad)")
        lg.free(g, mine["v_op"], *([mine["dropped"]] if v.dropout else []))
        if v.dropout:
            gn = lg.new(f"{p}.g_noise", F32 * n, TMP, f"{p} backward: * noise")
            lg.free(gw, mine["noise"])
            gw = gn
        gs = lg.new(f"{p}.gs", F32 * n, TMP, f"{p} backward: _softmax_backward_data")
        lg.free(gw, mine["probs"])
        gq = lg.new(f"{p}.gq", F32 * BT * d, TMP, f"{p} backward: g @ K (Q's grad)")
        gk = lg.new(f"{p}.gk", F32 * BT * d, TMP, f"{p} backward: Q^T @ g (K's grad)")
        lg.free(gs, mine["q_op"], mine["k_op"])
        gk2 = lg.new(f"{p}.gk2", F32 * BT * d, TMP, f"{p} backward: * sqrt(scale) (K)")
        lg.free(gk)
        gk = gk2
        if v.gqa:  # the repeats (made after q's scaling, before k's) come between
            gvs = lg.new(f"{p}.gv_sum", F32 * BT * kv, TMP, f"{p} backward: V's repeat (sum)")
            lg.free(gv)
            gks = lg.new(f"{p}.gk_sum", F32 * BT * kv, TMP, f"{p} backward: K's repeat (sum)")
            lg.free(gk)
            gv, gk = gvs, gks
        gq2 = lg.new(f"{p}.gq2", F32 * BT * d, TMP, f"{p} backward: * sqrt(scale) (Q)")
        lg.free(gq)
        gq = gq2
        if v.autocast:
            out = []
            order = (("k", gk, kv), ("v", gv, kv), ("q", gq, d)) if v.gqa else \
                (("k", gk, kv), ("q", gq, d), ("v", gv, kv))  # (measured)
            for name, gg, w in order:
                out.append(lg.new(f"{p}.g{name}16", 2 * BT * w, TMP, f"{p} backward: {name}'s grad to bf16"))
                lg.free(gg)
            gk, gv, gq = out if v.gqa else (out[0], out[2], out[1])
        return gq, gk, gv

    def _sdpa_bwd(self, p: str, mine: dict, dm: str) -> tuple[str, str, str]:
        """One kernel call: q's, k's and v's gradients, each in its input's layout (k's and v's
        at h_kv heads)."""
        lg, s = self.lg, self.v.s
        gq = lg.new(f"{p}.gq", s * BT * d, TMP, label="")
        gk = lg.new(f"{p}.gk", s * BT * kv, TMP, label="")
        gv = lg.new(f"{p}.gv", s * BT * kv, TMP, f"{p} backward: scaled_dot_product_attention")
        lg.free(dm, mine["q"], mine["k"], mine["v"], mine["lse"], mine["out"])
        return gq, gk, gv
