"""Per-GPU memory of a training step spread over GPUs (an `accounting.layout.Layout`): the bytes of
parameters, gradients and AdamW state each rank holds, its activations, its peak, the largest
per-GPU batch, and its share of the step's FLOPs. Formulas in the size symbols plus N_dp
(data-parallel ranks), N_tp (tensor-parallel ranks) and b (sequences per data-parallel rank).

Conventions (float32 master weights, gradients and AdamW m, v; bf16 mixed precision adds its
2-byte working copy of the TP-local weights, as accounting.memory does on one device):
  - The parameter tensors are the model's own (`parameter_tensors`): shape, tensor-parallel split,
    and the order of their first use in the forward (DDP's gradient buckets follow its reverse).
  - Tensor parallelism: a column-split weight (q, k, v projections, W1, W3) keeps out/N_tp of its
    rows, a row-split one (output projection, W2) in/N_tp of its columns; the embedding, the norm
    gains and the LM head are whole on every rank.
  - FSDP2 (zero2, zero3) splits each TP-local parameter's dim 0 over the N_dp ranks as torch.chunk
    does: chunks of c = ceil(rows / N_dp) rows, the last ranks' shorter or empty. Every rank stores
    its chunk padded to c rows, and so does the reduce-scattered gradient; AdamW's state is created
    like the unpadded chunk (rank r: max(0, min(c, rows - r*c)) rows). Formulas are rank 0's, which
    holds the most; `rank_state_bytes` gives any rank.
  - ZeRO-1 (accounted only, no trainer runs it): AdamW state as one flat partition of
    ceil(P / N_dp) elements per rank (DeepSpeed's; its alignment padding not counted); parameters
    and gradients whole on every rank.
  - DDP: every rank holds everything; gradients are views into DDP's buckets (no second copy).
  - Transient (modeled, not measured): zero2 keeps every group's gathered parameters from its
    forward to its backward; zero3 frees them after each forward, and at the start of the backward
    holds the root group (embedding, final norm, LM head) and min(2, L) blocks (the one computing
    and the one prefetched) gathered. Both hold the root group's unsharded gradients from the LM
    head's backward to the end, and one block's before its reduce-scatter. Gathered sizes are
    padded (N_dp * c rows).
  - Activations per rank: the single-device "implementation" activations at b = B / N_dp sequences,
    with the tensors inside the split attention and FFN at their local shapes (heads h/N_tp, widths
    d/N_tp and d_ff/N_tp); the replicated inputs of the split projections stay whole.
  - Peak per rank. DDP on one tensor-parallel rank (`timeline_applies`): the memory timeline of
    the per-rank step (accounting.timeline at b sequences) with the gradients held at full size
    for the whole step (DDP's buckets, gradient_as_bucket_view); its rows are the peak event's
    composition, as accounting.memory's are on one device. Measured equal, every rank, with
    MemTracker (validation.distributed). Other layouts: the sum of the above, everything alive at
    the start of the backward (the logits' gradient and AdamW's temporaries not in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from accounting.activations import activation_terms
from accounting.config import ModelConfig
from accounting.conventions import TRAINING_DTYPES
from accounting.errors import UserError
from accounting.flops import forward_terms
from accounting.layout import Layout
from accounting.rows import Row, evaluate, make_rows
from accounting.symbols import B, L, N_dp, N_tp, V, b, d, d_ff, h, h_kv, values

_F32 = 4
SPLITS = ("column", "row", "none")


@dataclass(frozen=True)
class ParamTensor:
    """One parameter of the model (of each block when `name` starts with "layers."): `rows` (dim 0)
    x `cols` (the other dims' product, 1 for a vector) elements, split `split` under tensor
    parallelism ("column": rows / N_tp, "row": cols / N_tp, "none": whole)."""

    name: str
    rows: sp.Expr
    cols: sp.Expr
    split: str

    @property
    def per_block(self) -> bool:
        return self.name.startswith("layers.")

    @property
    def count(self) -> sp.Expr:
        return L if self.per_block else sp.Integer(1)

    @property
    def tp_rows(self) -> sp.Expr:
        return self.rows / N_tp if self.split == "column" else self.rows

    @property
    def tp_cols(self) -> sp.Expr:
        return self.cols / N_tp if self.split == "row" else self.cols

    @property
    def tp_numel(self) -> sp.Expr:
        return self.tp_rows * self.tp_cols

    @property
    def chunk_rows(self) -> sp.Expr:
        """c = ceil(TP-local rows / N_dp): FSDP's padded chunk."""
        return sp.ceiling(self.tp_rows / N_dp)

    @property
    def padded_numel(self) -> sp.Expr:
        return self.chunk_rows * self.tp_cols


def _block_tensors(cfg: ModelConfig) -> list[tuple[str, sp.Expr, sp.Expr, str]]:
    """A block's parameters in the order its forward first uses them."""
    kv = d * h_kv / h
    attn = [("attn.q_proj", d, d, "column"), ("attn.k_proj", kv, d, "column"),
            ("attn.v_proj", kv, d, "column"), ("attn.output_proj", d, d, "row")]
    ffn = [("ffn.w1", d_ff, d, "column")]
    ffn += [("ffn.w3", d_ff, d, "column")] if cfg.ffn == "swiglu" else []
    ffn += [("ffn.w2", d, d_ff, "row")]
    ln1, ln2 = ([("ln1", d, sp.Integer(1), "none")], [("ln2", d, sp.Integer(1), "none")]) \
        if cfg.norm == "rmsnorm" else ([], [])
    # pre-norm: ln1 -> attention -> ln2 -> FFN; post-norm: attention -> ln1 -> FFN -> ln2
    return ln1 + attn + ln2 + ffn if cfg.norm_position == "pre" else attn + ln1 + ffn + ln2


@lru_cache(maxsize=256)
def parameter_tensors(cfg: ModelConfig) -> tuple[ParamTensor, ...]:
    """Every parameter tensor in the order of its first use in the forward (a tied LM head is the
    embedding, used first). The gradients become ready in the reverse order (measured on the model:
    tests/model/test_parallel_layouts.py)."""
    out = [ParamTensor("token_embeddings.weight", V, d, "none")]
    out += [ParamTensor(f"layers.{n}.weight", r, c, s) for n, r, c, s in _block_tensors(cfg)]
    if cfg.norm == "rmsnorm" and cfg.norm_position == "pre":
        out.append(ParamTensor("ln_final.weight", d, sp.Integer(1), "none"))
    if not cfg.tie_embeddings:
        out.append(ParamTensor("lm_head.weight", V, d, "none"))
    return tuple(out)


def _total(tensors, size) -> sp.Expr:
    return sp.Add(*(t.count * size(t) for t in tensors))


def fsdp_groups(cfg: ModelConfig) -> dict[str, tuple[ParamTensor, ...]]:
    """FSDP2 groups as model/parallelize.py wraps them: "block" (one per TransformerBlock, L of
    them) and "root" (what fully_shard(model) is left with: embedding, final norm, LM head)."""
    tensors = parameter_tensors(cfg)
    return {"block": tuple(t for t in tensors if t.per_block),
            "root": tuple(t for t in tensors if not t.per_block)}


def gathered_group_bytes(group: tuple[ParamTensor, ...]) -> sp.Expr:
    """Bytes of one group's gathered (padded) parameters: sum of N_dp * c * cols * 4, one block."""
    return sp.Add(*(_F32 * N_dp * t.padded_numel for t in group))


def _check(strategy: str, dtype: str) -> None:
    Layout(strategy=strategy)  # validates the name
    if dtype not in TRAINING_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TRAINING_DTYPES)}, got {dtype!r}")


@lru_cache(maxsize=256)
def state_terms(cfg: ModelConfig, strategy: str, dtype: str = "float32"
                ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) of what rank 0 holds besides activations."""
    _check(strategy, dtype)
    tensors = parameter_tensors(cfg)
    whole = _total(tensors, lambda t: t.tp_numel)
    if strategy in ("ddp", "zero1"):
        params = grads = _F32 * whole
        note = "whole (TP-local) on every rank"
        opt = 2 * _F32 * (whole if strategy == "ddp" else sp.ceiling(whole / N_dp))
        opt_note = "AdamW m + v" + ("" if strategy == "ddp" else ", a flat 1/N_dp partition")
    else:
        params = grads = _F32 * _total(tensors, lambda t: t.padded_numel)
        note = "FSDP shard, dim 0 padded to ceil(rows/N_dp)"
        opt, opt_note = 2 * _F32 * _total(tensors, lambda t: t.padded_numel), \
            "AdamW m + v of the unpadded shard (rank 0's is the full chunk)"
    terms = [("parameters", params, note), ("gradients", grads, note), ("optimizer_state", opt, opt_note)]
    if dtype == "bfloat16":
        terms.append(("weights_bf16_copy", 2 * whole, "autocast's bfloat16 copies of the weights"))
    groups = fsdp_groups(cfg)
    block, root = gathered_group_bytes(groups["block"]), gathered_group_bytes(groups["root"])
    if strategy == "zero2":
        terms.append(("gathered_parameters", L * block + root,
                      "transient (modeled): every group's gathered parameters, forward to backward"))
    elif strategy == "zero3":
        terms.append(("gathered_parameters", root + sp.Min(2, L) * block,
                      "transient (modeled): root + min(2, L) blocks at the start of the backward"))
    if strategy in ("zero2", "zero3"):
        terms.append(("unsharded_gradients", root + block,
                      "transient (modeled): root's and one block's gradients before reduce-scatter"))
    return tuple(terms)


TP_LOCAL_ACTIVATIONS = ("layers.attn", "layers.attn.rope", "layers.attn.output_proj", "layers.ffn",
                        "layers.ffn.w2")
"""Activation components (accounting.activations_impl names) whose tensors live inside the split
attention / FFN, at local shapes under tensor parallelism."""
_LOCAL = {d: d / N_tp, h: h / N_tp, h_kv: h_kv / N_tp, d_ff: d_ff / N_tp}


def per_rank_activation_terms(terms: tuple[tuple[str, sp.Expr, str], ...]
                              ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """Single-device activation terms (name, bytes formula in B, note) -> one rank's: B -> b, and
    the TP_LOCAL_ACTIVATIONS components at local shapes. Takes the pieces as inputs, so a memory
    timeline can feed it the same way."""
    out = []
    for name, formula, note in terms:
        f = formula.xreplace(_LOCAL) if name in TP_LOCAL_ACTIVATIONS else formula
        out.append((name, sp.expand(f.xreplace({B: b})), note))
    return tuple(out)


def activation_terms_per_rank(cfg: ModelConfig, dtype: str = "float32"
                              ) -> tuple[tuple[str, sp.Expr, str], ...]:
    return per_rank_activation_terms(activation_terms(cfg, "implementation", dtype))


def layout_values(cfg: ModelConfig, layout: Layout, batch_size: int,
                  context_length: int | None = None) -> dict[sp.Symbol, int]:
    """Substitutions for a global batch of `batch_size` (UserError unless N_dp divides it)."""
    layout.check_model(cfg)
    per_rank = layout.per_rank_batch(batch_size)
    subs = values(cfg, batch_size, context_length)
    subs.update({N_dp: layout.data_parallel, N_tp: layout.tensor_parallel, b: per_rank})
    return subs


def per_rank_memory_rows(cfg: ModelConfig, layout: Layout, batch_size: int,
                         context_length: int | None = None, dtype: str = "float32") -> list[Row]:
    """Rank 0's bytes: parameters, gradients, optimizer state, [bf16 copy], [transient], activations."""
    subs = layout_values(cfg, layout, batch_size, context_length)
    rows = make_rows(state_terms(cfg, layout.strategy, dtype), subs, "bytes")
    act = sp.Add(*(f for _, f, _ in activation_terms_per_rank(cfg, dtype)))
    rows.append(Row("activations", act, evaluate(act, subs), "bytes",
                    f"b = {subs[b]} sequences, TP-local inside attention and FFN"))
    return rows


def per_rank_peak_bytes(state_rows: list[Row], activation_bytes: int) -> int:
    """Peak of one rank: its state (parameters, gradients, optimizer, transient) plus the
    activations alive at the start of the backward (given: a timeline can supply them)."""
    return sum(r.value for r in state_rows if r.name != "activations") + activation_bytes


def timeline_applies(layout: Layout) -> bool:
    """Whether a rank's peak is its step's memory timeline: DDP without tensor parallelism (each
    rank runs the one-device step, its gradients in DDP's buckets)."""
    return layout.strategy == "ddp" and layout.tensor_parallel == 1


def ddp_timeline_rows(cfg: ModelConfig, layout: Layout, batch_size: int,
                      context_length: int | None = None, dtype: str = "float32",
                      optimizer: str = "reference", checkpointing: bool = False
                      ) -> tuple[list[Row], int]:
    """(rows, peak) of one DDP rank at a global batch of `batch_size`: the bucket timeline's peak
    event by category (formulas in b) and its total, on the given training path."""
    from accounting.timeline import CATEGORIES, memory_timeline

    subs = layout_values(cfg, layout, batch_size, context_length)
    tl = memory_timeline(cfg, subs[b], context_length, dtype, optimizer, checkpointing,
                         gradient_buckets=True)
    peak = tl.peak
    rows = [Row(c, tl.formula(peak, c).xreplace({B: b}), peak.bytes[c], "bytes",
                f"at the step's peak ({peak.phase}: {peak.name})" if c == "activations" else "")
            for c in CATEGORIES if peak.bytes[c]]
    return rows, tl.peak_bytes


@dataclass(frozen=True)
class PerRankBatchFit:
    """Largest b (sequences per data-parallel rank) with fixed + per_sequence * b <= budget."""

    per_rank_batch: int
    global_batch: int
    fixed_bytes: int
    bytes_per_sequence: int
    budget_bytes: int


def largest_per_rank_batch(cfg: ModelConfig, layout: Layout, budget_bytes: int,
                           context_length: int | None = None, dtype: str = "float32",
                           optimizer: str = "reference", checkpointing: bool = False
                           ) -> PerRankBatchFit | None:
    """Largest b that fits one GPU's `budget_bytes` (None when not even b = 1 fits). Under
    `timeline_applies`, fixed + per_sequence * b is the binding event of the bucket timeline on
    the training path (`optimizer`, `checkpointing`); the other layouts' sums ignore the path."""
    if timeline_applies(layout):
        from accounting.timeline import largest_batch

        layout.check_model(cfg)
        try:
            bound = largest_batch(cfg, budget_bytes, context_length, dtype, optimizer, checkpointing,
                                  gradient_buckets=True)
        except UserError:  # not even the batch-independent memory fits
            return None
        if bound.batch_size < 1:
            return None
        return PerRankBatchFit(bound.batch_size, bound.batch_size * layout.data_parallel,
                               bound.fixed_bytes, bound.bytes_per_sequence, budget_bytes)
    subs = layout_values(cfg, layout, layout.data_parallel, context_length)
    subs.pop(b)
    peak = sp.expand(sp.Add(*(f for _, f, _ in state_terms(cfg, layout.strategy, dtype)),
                            *(f for _, f, _ in activation_terms_per_rank(cfg, dtype))).xreplace(subs))
    per_seq, fixed = int(peak.coeff(b, 1)), int(peak.coeff(b, 0))
    if fixed + per_seq > budget_bytes:
        return None
    fit = (budget_bytes - fixed) // per_seq
    return PerRankBatchFit(fit, fit * layout.data_parallel, fixed, per_seq, budget_bytes)


def per_rank_flops_terms(cfg: ModelConfig) -> tuple[tuple[str, sp.Expr, str], ...]:
    """Forward matmul FLOPs of one rank: at b sequences, the split attention and FFN / N_tp."""
    out = []
    for name, f, note in forward_terms(cfg.ffn):
        split = name.startswith(("layers.attn.", "layers.ffn."))
        out.append((name, (f / N_tp if split else f).xreplace({B: b}), note))
    return tuple(out)


def per_rank_train_step_flops(cfg: ModelConfig, layout: Layout, batch_size: int,
                              context_length: int | None = None) -> int:
    """Forward + backward (3x forward) matmul FLOPs one GPU runs in a step of global batch B."""
    subs = layout_values(cfg, layout, batch_size, context_length)
    return 3 * evaluate(sp.Add(*(f for _, f, _ in per_rank_flops_terms(cfg))), subs)


# ---- any rank, numerically (the validation compares every rank) ------------------------------
def _chunk_rows(rows: int, ranks: int, rank: int) -> tuple[int, int]:
    """(padded, unpadded) rows of `rank`'s torch.chunk of `rows` rows over `ranks`."""
    c = -(-rows // ranks)
    return c, max(0, min(c, rows - rank * c))


def rank_state_bytes(cfg: ModelConfig, layout: Layout, dp_rank: int) -> dict[str, int]:
    """Parameters, gradients and AdamW state bytes of the rank at data-parallel index `dp_rank`
    (the same on every tensor-parallel rank), float32."""
    subs = layout_values(cfg, layout, layout.data_parallel)
    n = layout.data_parallel
    params = opt = 0
    for t in parameter_tensors(cfg):
        count, rows, cols = (evaluate(x, subs) for x in (t.count, t.tp_rows, t.tp_cols))
        if layout.strategy in ("zero2", "zero3"):
            padded, unpadded = _chunk_rows(rows, n, dp_rank)
            params += count * padded * cols
            opt += count * unpadded * cols
        else:
            params += count * rows * cols
            opt += count * rows * cols
    if layout.strategy == "zero1":
        opt = -(-opt // n)
    return {"parameters": _F32 * params, "gradients": _F32 * params, "optimizer_state": 2 * _F32 * opt}
