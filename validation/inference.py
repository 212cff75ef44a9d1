"""`measure_inference(cfg, ...)`: the real model decoding with its KV cache, every number beside
accounting.inference's.

What runs (B sequences, a prompt of P random tokens, G new tokens; S = P + G - 1):
  1. the cache: model.kv_cache.KVCache for B x S, as model.sampling allocates it; its tensors'
     bytes against accounting's kv_cache_bytes;
  2. the prefill, instrumented: FlopCounterMode (the total) and validation's DispatchCounter with
     the module attribution (per component), and validation.traffic.TrafficCounter (bytes of
     parameters and cache read / written, the residual apart);
  3. decode steps, greedy, up to the last one (t = S - 1, the cache full), which is instrumented
     the same way;
  4. cpu / cuda: one timed request (after an untimed one): the prefill's time (time to first
     token) and the mean decode step (time per output token) beside the roofline bounds of
     accounting.build_inference_report, when a peak FLOP/s and an HBM bandwidth are known (the GPU
     table on CUDA, or given): the ratio measured / bound is reported; it is a bound, not a
     prediction.
On the meta device only shapes exist (no timing): any size in seconds.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

import accounting.inference as inf
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.hardware import match_gpu, matmul_dtype
from accounting.inference_report import build_inference_report
from model.kv_cache import KVCache
from model.transformer import TransformerLM
from validation.attribution import Attribution
from validation.core import measurable_device
from validation.counters import EXTRA_FLOP_FORMULAS, DispatchCounter
from validation.reasons import UNEXPLAINED
from validation.rows import ComparisonRow, Measurement
from validation.run import build
from validation.timing import hardware
from validation.traffic import COPIES, OTHER, PARTS, TrafficCounter

FLOPS = "2*m*n*p per matmul (FlopCounterMode's formulas), dense; LM head on the last position only"
BYTES = ("bytes at dispatch: parameter and KV-cache arguments of every non-view aten op, each "
         "storage once per op, expanded views once; a gather of the embedding counts the rows it "
         "returns")
EXCLUDED = ("activations, logits, RoPE tables, masks and token ids: excluded from bytes moved by "
            "convention (accounting.inference)")
REPEATED = ("copies of the cache the attention reads again: grouped-query K/V repeated to h heads (naive "
            "path; sdpa's math decomposition on meta); the accounting counts each cached K/V read once")
BOUND = "the roofline is a lower bound (datasheet peak FLOP/s and HBM bandwidth), not a prediction"
_CORE = ("layers.attn.scores", "layers.attn.weighted_values")


@dataclasses.dataclass
class StepCounts:
    """One instrumented forward: matmul FLOPs per component, FlopCounterMode's total, bytes per part."""

    flops: dict[str, int]
    flop_counter_total: int
    bytes: dict[str, int]


def _instrumented(model: TransformerLM, ids: torch.Tensor, positions: torch.Tensor, cache: KVCache
                  ) -> tuple[torch.Tensor, StepCounts]:
    attribution = Attribution(model, outside="(outside the model)")
    counter = DispatchCounter(attribution)
    flop_counter = FlopCounterMode(display=False, custom_mapping=dict(EXTRA_FLOP_FORMULAS))
    traffic = TrafficCounter(model.parameters(), cache.tensors())
    with attribution.tracking(), flop_counter, counter, traffic:
        logits = model(ids, positions, kv_cache=cache)
    return logits, StepCounts(dict(counter.matmul["forward"]), int(flop_counter.get_total_flops()),
                              dict(traffic.bytes))


def _symbolic(rows, attention: str) -> dict[str, int]:
    """accounting rows as {component: value}; for sdpa the core's two matmuls are one op."""
    out = {r.name: r.value for r in rows}
    if attention == "sdpa":
        out = {k: v for k, v in out.items() if k not in _CORE}
        out["layers.attn.core"] = sum(r.value for r in rows if r.name in _CORE)
    return out


def _compare(quantity: str, unit: str, convention: str, symbolic: Mapping[str, int],
             measured: Mapping[str, int], total_measured: int | None = None) -> list[ComparisonRow]:
    names = list(symbolic) + [n for n in measured if n not in symbolic]
    rows = []
    for name in names:
        s, m = symbolic.get(name), measured.get(name, 0)
        rows.append(ComparisonRow(quantity, name, unit, s, m, convention, "" if s == m else UNEXPLAINED))
    s_total = sum(symbolic.values())
    m_total = sum(measured.values()) if total_measured is None else total_measured
    rows.append(ComparisonRow(quantity, "total", unit, s_total, m_total, convention,
                              "" if s_total == m_total else UNEXPLAINED))
    return rows


def _step_rows(phase: str, counts: StepCounts, flop_rows, byte_rows, attention: str) -> list[ComparisonRow]:
    rows = _compare(f"{phase} matmul FLOPs", "flops", FLOPS, _symbolic(flop_rows, attention),
                    counts.flops, total_measured=counts.flop_counter_total)
    moved = {part: counts.bytes.get(part, 0) for part in PARTS}
    rows += _compare(f"{phase} bytes moved", "bytes", BYTES, {r.name: r.value for r in byte_rows}, moved)
    rows.append(ComparisonRow(f"{phase} bytes moved", COPIES, "bytes", None, counts.bytes.get(COPIES, 0),
                              BYTES, REPEATED))
    rows.append(ComparisonRow(f"{phase} bytes moved", OTHER, "bytes", None, counts.bytes.get(OTHER, 0),
                              BYTES, EXCLUDED))
    return rows


SERVED = {"float32": "float32", "bfloat16": "bfloat16-pure"}
"""Serving dtype -> validation.run's build dtype: a served model holds its weights in the serving
dtype (bf16 weights, no float32 master copy, no autocast)."""


def _check(cfg: ModelConfig, device: str, dtype: str) -> torch.device:
    if dtype not in SERVED:
        raise UserError(f"dtype must be one of {', '.join(SERVED)} (the model runs them), got {dtype!r}")
    return measurable_device(device)


def _prompt(cfg: ModelConfig, batch_size: int, prompt_tokens: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    return torch.randint(0, cfg.vocab_size, (batch_size, prompt_tokens), generator=g).to(device)


def _next(logits: torch.Tensor) -> torch.Tensor:
    """Greedy next tokens (B, 1) from logits (B, 1, V); zeros on meta (no values there)."""
    if logits.is_meta:
        return torch.zeros(logits.shape[0], 1, dtype=torch.long, device=logits.device)
    return logits[:, -1].argmax(-1, keepdim=True)


@torch.no_grad()
def _counted_request(model: TransformerLM, prompt: torch.Tensor, sequence: int
                     ) -> tuple[KVCache, StepCounts, StepCounts]:
    """Prefill (instrumented), then greedy decode steps up to t = S - 1 (G >= 2), the last one
    instrumented."""
    batch, prompt_tokens = prompt.shape
    cache = KVCache.for_model(model, batch, sequence)
    positions = torch.arange(prompt_tokens, device=prompt.device)
    logits, prefill = _instrumented(model, prompt, positions, cache)
    token = _next(logits)
    for position in range(prompt_tokens, sequence - 1):
        token = _next(model(token, torch.arange(position, position + 1, device=prompt.device), kv_cache=cache))
    last = sequence - 1
    _, decode = _instrumented(model, token, torch.arange(last, last + 1, device=prompt.device), cache)
    return cache, prefill, decode


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_request(model: TransformerLM, prompt: torch.Tensor, new_tokens: int) -> tuple[float, list[float]]:
    """Seconds of the prefill and of each of the G - 1 greedy decode steps of one request (with
    the cache; CUDA synchronized around each step)."""
    batch, prompt_tokens = prompt.shape
    device = prompt.device
    cache = KVCache.for_model(model, batch, prompt_tokens + new_tokens - 1)
    _sync(device)
    start = time.perf_counter()
    token = _next(model(prompt, torch.arange(prompt_tokens, device=device), kv_cache=cache))
    _sync(device)
    prefill = time.perf_counter() - start
    steps = []
    for position in range(prompt_tokens, prompt_tokens + new_tokens - 1):
        start = time.perf_counter()
        token = _next(model(token, torch.arange(position, position + 1, device=device), kv_cache=cache))
        _sync(device)
        steps.append(time.perf_counter() - start)
    return prefill, steps


def _timing_rows(cfg: ModelConfig, model: TransformerLM, prompt: torch.Tensor, new_tokens: int,
                 dtype: str, peak: float | None, bandwidth: float | None, source: str) -> list[ComparisonRow]:
    time_request(model, prompt, new_tokens)  # warm-up: kernels chosen, allocator populated
    prefill, steps = time_request(model, prompt, new_tokens)
    bounds = None
    if peak and bandwidth:
        bounds = build_inference_report(cfg, batch_size=prompt.shape[0], prompt_tokens=prompt.shape[1],
                                        new_tokens=new_tokens, dtype=dtype, peak_flops_per_s=peak,
                                        hbm_bytes_per_s=bandwidth, memory_budget_bytes=1)
    how = f"roofline bound at {peak or 0:.4g} FLOP/s and {bandwidth or 0:.4g} bytes/s ({source})"
    tpot = statistics.mean(steps) if steps else None
    rows = [ComparisonRow("time to first token", "total", "seconds",
                          bounds.time_to_first_token_s if bounds else None, prefill,
                          how if bounds else "the prefill, timed", BOUND if bounds else "")]
    if tpot is not None:
        rows.append(ComparisonRow("time per output token", "total", "seconds",
                                  bounds.time_per_output_token_s if bounds else None, tpot,
                                  how if bounds else "mean of the decode steps",
                                  BOUND if bounds else f"{len(steps)} decode steps, median "
                                  f"{statistics.median(steps):.4g} s"))
        rows.append(ComparisonRow("throughput", "decode tokens/s", "tokens/s", None, prompt.shape[0] / tpot,
                                  "B / time per output token"))
    if bounds and tpot is not None:
        rows.append(ComparisonRow("time per output token / roofline bound", "total", "x", None,
                                  tpot / bounds.time_per_output_token_s, how, BOUND))
    return rows


def measure_inference(cfg: ModelConfig, *, device: str = "meta", batch_size: int = 1,
                      prompt_tokens: int = 16, new_tokens: int = 16, dtype: str = "float32",
                      peak_flops_per_s: float | None = None, hbm_bytes_per_s: float | None = None
                      ) -> Measurement:
    """Measure one request (B x (P prompt + G new tokens)) of `cfg` on `device` in `dtype`
    ("float32" | "bfloat16"); every row beside accounting.inference. On CUDA the GPU table gives
    the roofline's peak and bandwidth (`peak_flops_per_s`, `hbm_bytes_per_s` override them, and
    supply them on CPU). Bad settings raise UserError."""
    req = inf.request(cfg, batch_size, prompt_tokens, new_tokens)
    if new_tokens < 2:
        raise UserError("a request of one new token has no decode step to measure: give new tokens >= 2")
    dev = _check(cfg, device, dtype)
    S = req.sequence_tokens
    model = build(cfg, str(dev), SERVED[dtype]).eval()
    prompt = _prompt(cfg, batch_size, prompt_tokens, dev)
    cache, prefill, decode = _counted_request(model, prompt, S)
    position = req.last_decode_position
    kv = inf.kv_cache_bytes(cfg, batch_size, S, dtype)
    measured_kv = {"keys": sum(t.nelement() * t.element_size() for t in cache.keys),
                   "values": sum(t.nelement() * t.element_size() for t in cache.values)}
    rows = _compare("KV cache bytes", "bytes", inf.INFERENCE_CONVENTIONS.kv_cache,
                    {"keys": kv // 2, "values": kv // 2}, measured_kv)
    rows += _step_rows("prefill", prefill, inf.prefill_flops_rows(cfg, batch_size, prompt_tokens),
                       inf.prefill_byte_rows(cfg, batch_size, prompt_tokens, dtype), cfg.attention)
    rows += _step_rows("decode", decode, inf.decode_flops_rows(cfg, batch_size, position),
                       inf.decode_byte_rows(cfg, batch_size, position, dtype), cfg.attention)
    peak, bandwidth, source = peak_flops_per_s, hbm_bytes_per_s, "given"
    if dev.type == "cuda":
        gpu = match_gpu(torch.cuda.get_device_name(dev))
        if gpu is not None:
            source = f"{gpu.name}: {gpu.source}; {gpu.bandwidth_source}" if peak is None else source
            peak = peak or gpu.peak(matmul_dtype(dtype, torch.backends.cuda.matmul.allow_tf32))
            bandwidth = bandwidth or gpu.hbm_bytes_per_s
    if dev.type != "meta":
        rows += _timing_rows(cfg, model, prompt, new_tokens, dtype, peak, bandwidth, source)
    settings = {"batch_size": batch_size, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
                "sequence_tokens": S, "decode_position": position, "dtype": dtype, "device": str(dev),
                "context_length": cfg.context_length, "steps": new_tokens - 1,
                "precision": f"parameters, activations and KV cache in {dtype} (no autocast)"}
    notes = [f"unexplained difference: {r.quantity} / {r.component}" for r in rows if r.reason == UNEXPLAINED]
    return Measurement(rows, hardware(str(dev)), dataclasses.asdict(cfg), settings, notes)
