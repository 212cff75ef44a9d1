"""RMSNorm and LayerNorm (model/layers.py) as the ledger sees them: every allocating aten call of
their forward and backward, computed in float32 whatever the input dtype (the residual stream they
read is float32 under autocast too). Conventions as in accounting.timeline.layers.
"""

from __future__ import annotations

from accounting.timeline.layers import ACT, BT, F32, GRAD, TMP, Layers
from accounting.timeline.ledger import d


class Norms(Layers):
    """Layers plus the norms (accounting.timeline.layers.Layers explains the bookkeeping)."""

    def norm_fwd(self, p: str, x: str, last: bool = False, free_x: bool = False) -> str:
        """x float32 (B,T,d) (the residual stream is float32 under autocast too, so x.float() is
        x itself) -> the normalized x (B,T,d) float32, a transient. `last`: a checkpoint's
        recompute stops at this norm's last saved tensor. `free_x`: x dies with the norm's
        forward (its only reference was the argument), unless the norm saved it."""
        out = (self._layernorm_fwd if self.v.norm == "layernorm" else self._rmsnorm_fwd)(p, x, last)
        if free_x:
            self.release(x)
        return out

    def _rmsnorm_fwd(self, p: str, x: str, last: bool) -> str:
        """Saves x, rms (B,T,1) and x*rms (B,T,d)."""
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

    def _layernorm_fwd(self, p: str, x: str, last: bool) -> str:
        """Saves c = x - mean (B,T,d), rstd (B,T,1) and c*rstd (B,T,d), not x."""
        lg = self.lg
        mean = lg.new(f"{p}.mean", F32 * BT, TMP, f"{p}: mean")
        c = lg.new(f"{p}.c", F32 * BT * d, ACT, f"{p}: x - mean")
        lg.free(mean)
        sq = lg.new(f"{p}.sq", F32 * BT * d, TMP, f"{p}: c * c")
        var = lg.new(f"{p}.var", F32 * BT, TMP, f"{p}: mean (variance)")
        lg.free(sq)
        eps = lg.new(f"{p}.eps", F32 * BT, TMP, f"{p}: + eps")
        lg.free(var)
        rstd = lg.new(f"{p}.rstd", F32 * BT, ACT, f"{p}: rsqrt")
        lg.free(eps)
        cr = lg.new(f"{p}.cr", F32 * BT * d, ACT, f"{p}: c * rstd")
        self.names[p] = {"c": c, "rstd": rstd, "cr": cr}
        if self.early_stop and last:  # a post-norm block's recompute ends with c * rstd
            return ""
        cw = lg.new(f"{p}.cw", F32 * BT * d, TMP, f"{p}: * weight")
        out = lg.new(f"{p}.out", F32 * BT * d, TMP, f"{p}: + bias")
        lg.free(cw)
        return out

    def norm_bwd(self, p: str, g: str, buffer: str | None) -> str:
        """g (B,T,d) float32 (dies here) -> x's gradient. `buffer`: a gradient of x already
        waiting (the residual's), to which this path's contributions are added."""
        if self.v.norm == "layernorm":
            return self._layernorm_bwd(p, g, buffer)
        return self._rmsnorm_bwd(p, g, buffer)

    def _rmsnorm_bwd(self, p: str, g: str, buffer: str | None) -> str:
        """x dies (the norm is its last user)."""
        self.unpack()
        lg, mine = self.lg, self.names[p]
        g_xr = lg.new(f"{p}.g_xr", F32 * BT * d, TMP, f"{p} backward: g * weight")
        gw = lg.new(f"{p}.gw", F32 * BT * d, TMP, f"{p} backward: g * x*rms")
        xrms = self.dies_in_node(mine["xrms"])
        dw = lg.new(f"{p}.dW", F32 * d, TMP, f"{p} backward: dW (sum)")
        lg.free(gw, g, *xrms)
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

    def _layernorm_bwd(self, p: str, g: str, buffer: str | None) -> str:
        """The bias's gradient (a sum), the weight's, then c's two paths (through c * rstd, and
        through rstd and the variance: c * c's two factors) summed into c's gradient, which is
        x's (passed through the subtraction, first added to a waiting `buffer`) plus the mean's
        (-c's gradient summed, spread back over d)."""
        lg = self.lg
        db = lg.new(f"{p}.db", F32 * d, TMP, f"{p} backward: db (sum)")
        lg.move(db, GRAD)
        self.unpack()
        mine = self.names[p]
        g_cr = lg.new(f"{p}.g_cr", F32 * BT * d, TMP, f"{p} backward: g * weight")
        gw = lg.new(f"{p}.gw", F32 * BT * d, TMP, f"{p} backward: g * c*rstd")
        cr = self.dies_in_node(mine["cr"])
        dw = lg.new(f"{p}.dW", F32 * d, TMP, f"{p} backward: dW (sum)")
        lg.free(gw, g, *cr)
        lg.move(dw, GRAD)
        g_c1 = lg.new(f"{p}.g_c1", F32 * BT * d, TMP, f"{p} backward: grad * rstd")
        g_rc = lg.new(f"{p}.g_rc", F32 * BT * d, TMP, f"{p} backward: grad * c")
        g_r = lg.new(f"{p}.g_r", F32 * BT, TMP, f"{p} backward: grad of rstd")
        lg.free(g_rc, g_cr)
        r3 = lg.new(f"{p}.r3", F32 * BT, TMP, f"{p} backward: rsqrt grad (pow)")
        r3s = lg.new(f"{p}.r3s", F32 * BT, TMP, f"{p} backward: rsqrt grad (* -1/2)")
        g_v = lg.new(f"{p}.g_v", F32 * BT, TMP, f"{p} backward: rsqrt grad")
        lg.free(r3s, r3, g_r, mine["rstd"])
        g_sq = lg.new(f"{p}.g_sq", F32 * BT * d, TMP, f"{p} backward: variance (mean) grad")
        lg.free(g_v)
        m1 = lg.new(f"{p}.m1", F32 * BT * d, TMP, f"{p} backward: c * c grad (first factor)")
        m2 = lg.new(f"{p}.m2", F32 * BT * d, TMP, f"{p} backward: c * c grad (second factor)")
        lg.free(g_sq, mine["c"])
        if p.endswith(".ln1") and self.v.pre_norm:
            self.free_ckpt_input()
        acc = lg.new(f"{p}.acc1", F32 * BT * d, TMP, f"{p} backward: c's gradient (+ first)")
        lg.free(g_c1)
        g_c = lg.new(f"{p}.g_c", F32 * BT * d, TMP, f"{p} backward: c's gradient (+ second)")
        lg.free(acc, m1, m2)
        neg = lg.new(f"{p}.neg", F32 * BT * d, TMP, f"{p} backward: -grad (the mean's)")
        g_m = lg.new(f"{p}.g_m", F32 * BT, TMP, f"{p} backward: the mean's gradient (sum)")
        lg.free(neg)
        if buffer:
            g_c = self.add(f"{p}.acc2", buffer, g_c, F32 * BT * d, f"{p} backward: + residual grad")
        g_md = lg.new(f"{p}.g_md", F32 * BT * d, TMP, f"{p} backward: mean grad (/ d)")
        lg.free(g_m)
        return self.add(f"{p}.g_x", g_c, g_md, F32 * BT * d, f"{p} backward: x's gradient")
