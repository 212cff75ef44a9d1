"""`build_inference_report`: one request's KV cache, prefill and decode FLOPs and bytes, the
roofline bounds (time to first token, time per output token, tokens/s) and the serving capacity,
as typed sections (formatting: accounting.inference_render; conventions: accounting.inference).

The roofline: a step takes at least max(FLOPs / peak FLOP/s, bytes / HBM bandwidth). Its
arithmetic intensity FLOPs / byte against the GPU's ridge point peak / bandwidth says which bound
applies: below the ridge the step is memory-bound. These are lower bounds (datasheet peaks, no
kernel launch or communication cost), not predictions; validation reports measured / bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.hardware import GPU, get_gpu
from accounting.inference import (
    INFERENCE_CONVENTIONS, InferenceConventions, Request, ServingDtype, decode_byte_terms,
    decode_flop_terms, exact, kv_bytes_per_token_formula, kv_cache_formula, prefill_byte_terms,
    prefill_flop_terms, request, rows_at, serving_dtype, weight_bytes_formula,
)
from accounting.rows import Row
from accounting.symbols import t

DEFAULT_GPU = "H100-SXM"


@dataclass(frozen=True)
class PhaseBound:
    """One step (the prefill, or a decode step): FLOPs and bytes moved by component, and its
    roofline bound at `peak_flops_per_s` and `hbm_bytes_per_s`."""

    name: str
    flops: list[Row]
    bytes: list[Row]
    peak_flops_per_s: float
    hbm_bytes_per_s: float

    @property
    def flops_total(self) -> int:
        return sum(r.value for r in self.flops)

    @property
    def bytes_total(self) -> int:
        return sum(r.value for r in self.bytes)

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops_total / self.bytes_total

    @property
    def compute_seconds(self) -> float:
        return self.flops_total / self.peak_flops_per_s

    @property
    def memory_seconds(self) -> float:
        return self.bytes_total / self.hbm_bytes_per_s

    @property
    def seconds(self) -> float:
        """The bound: max(compute, memory) seconds."""
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def bound(self) -> str:
        """"compute" or "memory": the larger of the two times."""
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


@dataclass(frozen=True)
class ServingCapacity:
    """Serving memory = weights + KV cache, against a budget (bytes)."""

    budget_bytes: int
    weight_bytes: int
    kv_bytes_per_token: int  # per token of one sequence
    kv_cache_bytes: int      # the request's whole cache

    @property
    def memory_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes

    @property
    def kv_token_capacity(self) -> int | None:
        """Tokens of KV cache (B * S summed over the sequences) the budget holds beside the
        weights; None when the weights alone exceed it."""
        free = self.budget_bytes - self.weight_bytes
        return None if free < 0 else free // self.kv_bytes_per_token

    def largest_batch(self, sequence_tokens: int) -> int | None:
        """floor((budget - weights) / (S * KV bytes per token)); None: the weights do not fit."""
        tokens = self.kv_token_capacity
        return None if tokens is None else tokens // sequence_tokens

    def largest_context(self, batch_size: int) -> int | None:
        """Largest S for B sequences by memory alone (context_length is a separate limit)."""
        tokens = self.kv_token_capacity
        return None if tokens is None else tokens // batch_size


@dataclass(frozen=True)
class InferenceReport:
    """Everything about one request (B x (P prompt + G new tokens)) on one GPU."""

    config: ModelConfig
    request: Request
    dtype: ServingDtype
    gpu: str
    gpu_source: str
    bandwidth_source: str
    weight_bytes: Row
    kv_cache_bytes: Row
    kv_bytes_per_token: Row
    prefill: PhaseBound
    decode: PhaseBound           # the last decode step, t = S - 1: the cache full
    time_per_output_token_s: float | None  # mean bound of the G - 1 decode steps; None if G = 1
    capacity: ServingCapacity
    conventions: InferenceConventions = INFERENCE_CONVENTIONS

    @property
    def peak_flops_per_s(self) -> float:
        return self.prefill.peak_flops_per_s

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.prefill.hbm_bytes_per_s

    @property
    def ridge_point(self) -> float:
        """FLOPs per byte where the roofline turns: peak / bandwidth."""
        return self.peak_flops_per_s / self.hbm_bytes_per_s

    @property
    def decode_position(self) -> int:
        return self.request.last_decode_position

    @property
    def time_to_first_token_s(self) -> float:
        return self.prefill.seconds

    @property
    def tokens_per_s(self) -> float | None:
        """Decode throughput bound of the batch: B / time per output token."""
        tpot = self.time_per_output_token_s
        return None if tpot is None else self.request.batch_size / tpot

    @property
    def request_seconds(self) -> float:
        """Time to first token + (G - 1) x time per output token."""
        return self.time_to_first_token_s + (self.request.new_tokens - 1) * (self.time_per_output_token_s or 0)

    @property
    def largest_batch(self) -> int | None:
        return self.capacity.largest_batch(self.request.sequence_tokens)

    @property
    def largest_context(self) -> int | None:
        return self.capacity.largest_context(self.request.batch_size)


def _linear_sum(a: float, b: float, lo: int, hi: int) -> float:
    """sum of a + b*t for integer t in [lo, hi] (0 for an empty range)."""
    n = hi - lo + 1
    return 0.0 if n <= 0 else a * n + b * (lo + hi) * n / 2


def sum_of_max(f: tuple[float, float], g: tuple[float, float], lo: int, hi: int) -> float:
    """sum over integer t in [lo, hi] of max(f0 + f1*t, g0 + g1*t), exactly: the difference of two
    lines changes sign at most once, so split the range there and sum each line arithmetically."""
    da, db = f[0] - g[0], f[1] - g[1]  # f(t) - g(t) = da + db*t
    if db == 0:
        return _linear_sum(*(f if da >= 0 else g), lo, hi)
    root = -da / db
    if db > 0:  # f wins from the root on
        split = min(max(lo, math.ceil(root)), hi + 1)
        return _linear_sum(*g, lo, split - 1) + _linear_sum(*f, split, hi)
    split = max(min(hi, math.floor(root)), lo - 1)  # f wins up to the root
    return _linear_sum(*f, lo, split) + _linear_sum(*g, split + 1, hi)


def _line(terms, subs: dict, scale: float) -> tuple[float, float]:
    """(intercept, slope) in t of a sum of terms, divided by `scale`."""
    expr = sp.expand(sp.Add(*(f for _, f, _ in terms)).xreplace(
        {k: sp.Integer(v) for k, v in subs.items() if k is not t}))
    return float(expr.coeff(t, 0)) / scale, float(expr.coeff(t, 1)) / scale


def _time_per_output_token(cfg: ModelConfig, dtype: ServingDtype, req: Request, peak: float,
                           bandwidth: float) -> float | None:
    """The mean over the decode steps t = P .. P+G-2 of max(FLOPs(t)/peak, bytes(t)/bandwidth)."""
    steps = req.new_tokens - 1
    if steps == 0:
        return None
    compute = _line(decode_flop_terms(cfg), req.subs, peak)
    memory = _line(decode_byte_terms(cfg, dtype), req.subs, bandwidth)
    lo = req.prompt_tokens
    return sum_of_max(compute, memory, lo, lo + steps - 1) / steps


def _resolve_gpu(gpu: str | GPU | None) -> GPU:
    if isinstance(gpu, GPU):
        return gpu
    return get_gpu(gpu or DEFAULT_GPU)


def build_inference_report(cfg: ModelConfig, *, batch_size: int, prompt_tokens: int, new_tokens: int,
                           dtype: str = "bfloat16", gpu: str | GPU | None = None,
                           peak_flops_per_s: float | None = None, hbm_bytes_per_s: float | None = None,
                           memory_budget_bytes: int | None = None) -> InferenceReport:
    """The inference report of B sequences of P prompt + G new tokens served in `dtype` on `gpu`
    (a name in GPUS, a GPU, or None = H100-SXM); `peak_flops_per_s`, `hbm_bytes_per_s` and
    `memory_budget_bytes` override the GPU's. Bad input raises UserError."""
    dt = serving_dtype(dtype)
    req = request(cfg, batch_size, prompt_tokens, new_tokens)
    device = _resolve_gpu(gpu)
    for name, value in (("peak FLOP/s", peak_flops_per_s), ("HBM bandwidth", hbm_bytes_per_s),
                        ("memory budget", memory_budget_bytes)):
        if value is not None and not 0 < value < float("inf"):
            raise UserError(f"{name} must be positive, got {value}")
    peak = peak_flops_per_s or device.peak(dt.compute)
    bandwidth = hbm_bytes_per_s or device.bandwidth()
    budget = memory_budget_bytes or device.memory_bytes
    subs = req.subs
    decode_subs = {**subs, t: req.last_decode_position}
    weights = Row("weights", weight_bytes_formula(cfg, dt), exact(weight_bytes_formula(cfg, dt), subs),
                  "bytes", f"{dt.name}, tied once")
    kv = Row("kv_cache", kv_cache_formula(cfg, dt), exact(kv_cache_formula(cfg, dt), subs), "bytes",
             f"{dt.compute}, S = P + G - 1 = {req.sequence_tokens:,} tokens per sequence")
    per_token = Row("kv_cache_per_token", kv_bytes_per_token_formula(cfg, dt),
                    exact(kv_bytes_per_token_formula(cfg, dt), subs), "bytes", "one token of one sequence")
    prefill = PhaseBound("prefill", rows_at(prefill_flop_terms(cfg), subs, "flops"),
                         rows_at(prefill_byte_terms(cfg, dt), subs, "bytes"), peak, bandwidth)
    decode = PhaseBound("decode", rows_at(decode_flop_terms(cfg), decode_subs, "flops"),
                        rows_at(decode_byte_terms(cfg, dt), decode_subs, "bytes"), peak, bandwidth)
    return InferenceReport(
        cfg, req, dt, device.name,
        device.source if peak_flops_per_s is None else "peak FLOP/s user-given",
        device.bandwidth_source if hbm_bytes_per_s is None else "HBM bandwidth user-given",
        weights, kv, per_token, prefill, decode,
        _time_per_output_token(cfg, dt, req, peak, bandwidth),
        ServingCapacity(budget, weights.value, per_token.value, kv.value))


__all__ = ["DEFAULT_GPU", "InferenceReport", "PhaseBound", "ServingCapacity", "build_inference_report",
           "sum_of_max"]
