"""`batch-size`: batch sizes from 1 up to the largest that fits, at a fixed token budget.

"Fits" is accounting's answer: `accounting.largest_batch_size(cfg, budget)` solves the peak
training memory (the maximum of the step's memory timeline, accounting.timeline, in the run's
dtype) <= budget for the batch size. The budget is
`memory_budget_bytes` if given, else the free memory of the CUDA device (torch.cuda.mem_get_info;
the largest batch is then checked by running one training step, stepping down 10% at a time on
out-of-memory), else the available host memory (psutil) on CPU. The grid is 1, 2, 4, ... below
the top batch, plus the top itself; the top is the smallest of that fit, the batch that still
gets `min_steps` steps from the token budget, and `max_batch` if given (each cap is reported).

Every run sees the same number of tokens (steps = budget // (batch x context)); the peak
learning rate follows a stated rule relative to `ref_batch`: "sqrt" lr x sqrt(B / ref_batch)
(the default), "linear" lr x B / ref_batch, or "constant". Validation happens once, at the end,
on at least `eval_sequences` windows (eval batches = ceil(eval_sequences / B)).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accounting.errors import UserError
from model.experiments.data import Corpus
from model.experiments.plots import loss_curves, write_page
from model.experiments.runner import RunSpec
from model.experiments.settings import Settings
from model.experiments.summary import RunRecord, Summary
from model.experiments.sweep import Sweep, best_run

LR_RULES = ("sqrt", "linear", "constant")
DEFAULT_TOKEN_BUDGET = 1 << 18  # 262,144 tokens: 256 steps at batch 16 x context 64
DEFAULT_REF_BATCH = 16
DEFAULT_MIN_STEPS = 8
EVAL_SEQUENCES = 128


def scaled_lr(lr: float, batch_size: int, rule: str, ref_batch: int = DEFAULT_REF_BATCH) -> float:
    """The peak lr of a batch-`batch_size` run under `rule` (see the module docstring)."""
    if rule not in LR_RULES:
        raise UserError(f"lr rule must be one of {', '.join(LR_RULES)}; got {rule!r}")
    ratio = batch_size / ref_batch
    return lr * {"sqrt": math.sqrt(ratio), "linear": ratio, "constant": 1.0}[rule]


def batch_grid(top: int) -> list[int]:
    """1, 2, 4, ... below `top`, then `top` (ValueError if top < 1)."""
    if top < 1:
        raise UserError(f"the largest batch size must be >= 1, got {top}")
    grid = [1 << k for k in range(top.bit_length()) if 1 << k < top]
    return grid + [top]


def memory_budget(device: str, given: int | None) -> tuple[int, str]:
    """(bytes, where the number came from) of the memory the batch must fit in."""
    if given is not None:
        if given <= 0:
            raise UserError(f"memory budget must be positive, got {given}")
        return given, "--memory-budget"
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), "torch.cuda.mem_get_info (free device memory)"
    import psutil

    return int(psutil.virtual_memory().available), "psutil.virtual_memory().available (host memory)"


def plan(settings: Settings, token_budget: int, *, memory_budget_bytes: int | None = None,
         min_steps: int = DEFAULT_MIN_STEPS, max_batch: int | None = None) -> dict[str, Any]:
    """The batch grid and why it stops where it does (memory fit, token budget, max_batch)."""
    from accounting import largest_batch_size

    cfg = settings.model_cfg
    if token_budget < cfg.context_length * min_steps:
        raise UserError(f"token budget {token_budget} is below one sequence x {min_steps} steps "
                         f"({cfg.context_length * min_steps} tokens)")
    budget, source = memory_budget(settings.training.device, memory_budget_bytes)
    fit = largest_batch_size(cfg, budget, dtype=settings.training.dtype)
    if fit.batch_size < 1:
        raise UserError(f"not even batch size 1 fits in {budget:,} bytes ({fit.inequality})")
    caps = {"memory_fit": fit.batch_size, "token_budget": token_budget // (cfg.context_length * min_steps)}
    if max_batch is not None:
        if max_batch < 1:
            raise UserError(f"max batch size must be >= 1, got {max_batch}")
        caps["max_batch"] = max_batch
    top = min(caps.values())
    verified = None
    if settings.training.device.startswith("cuda") and top == fit.batch_size:
        top, verified = _largest_that_runs(settings, top), True
    return {"grid": batch_grid(top), "top": top, "limited_by": min(caps, key=caps.get), "caps": caps,
            "memory_budget_bytes": budget, "memory_budget_source": source, "fit": asdict(fit),
            "fit_checked_on_device": verified, "min_steps": min_steps}


def _largest_that_runs(settings: Settings, batch: int) -> int:
    """Step down 10% at a time until one forward+backward+AdamW step at `batch` runs on CUDA."""
    import torch

    from model import AdamW, TransformerLM, cross_entropy

    cfg = settings.model_cfg
    while batch >= 1:
        model = None
        try:
            model = TransformerLM(cfg, device=settings.training.device)
            opt = AdamW(model.parameters(), lr=1e-3)
            x = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length + 1),
                              device=settings.training.device)
            cross_entropy(model(x[:, :-1]), x[:, 1:]).backward()
            opt.step()
            return batch
        except torch.cuda.OutOfMemoryError:
            batch = int(batch * 0.9)
        finally:
            del model
            torch.cuda.empty_cache()
    raise UserError("batch size 1 does not run on this device")


def run_batch_size(settings: Settings, corpus: Corpus, out_dir: str | Path, *, lr: float,
                   token_budget: int = DEFAULT_TOKEN_BUDGET, lr_rule: str = "sqrt",
                   ref_batch: int = DEFAULT_REF_BATCH, memory_budget_bytes: int | None = None,
                   min_steps: int = DEFAULT_MIN_STEPS, max_batch: int | None = None,
                   lr_source: str = "--lr") -> Summary:
    """One run per batch size of the plan at `token_budget` tokens each; logs, summary, charts."""
    scaled_lr(lr, 1, lr_rule, ref_batch)  # validate the rule before any work
    p = plan(settings, token_budget, memory_budget_bytes=memory_budget_bytes, min_steps=min_steps,
             max_batch=max_batch)
    extra = {"steps": "token_budget // (batch x context_length), per run", "batch_size": "the grid",
             "token_budget": token_budget, "lr_rule": lr_rule, "base_lr": lr, "base_lr_source": lr_source,
             "ref_batch": ref_batch, "eval_sequences": EVAL_SEQUENCES, "plan": p}
    sweep = Sweep("batch-size", settings, corpus, out_dir, len(p["grid"]), extra)
    T = settings.model_cfg.context_length
    for b in p["grid"]:
        tcfg = settings.train_config(scaled_lr(lr, b, lr_rule, ref_batch), batch_size=b,
                                     steps=token_budget // (b * T), eval_interval=0,
                                     eval_batches=math.ceil(EVAL_SEQUENCES / b))
        sweep.run(RunSpec(f"batch-{b}", "baseline", settings.model_cfg, tcfg))
    summary = sweep.finish(batch_findings(sweep.summary.runs, p))
    write_charts(summary, sweep.out_dir, settings.plotly_js)
    return summary


def batch_findings(runs: list[RunRecord], p: dict[str, Any]) -> dict[str, Any]:
    best = best_run(runs)
    fastest = max((r for r in runs if r.tokens_per_s), key=lambda r: r.tokens_per_s, default=None)
    return {
        "largest_fitting_batch_by_accounting": p["fit"]["batch_size"], "top_batch": p["top"],
        "top_limited_by": p["limited_by"],
        "best_batch_by_val_loss": best.batch_size if best else None,
        "best_final_val_loss": best.final_val_loss if best else None,
        "fastest_batch_by_tokens_per_s": fastest.batch_size if fastest else None,
        "fastest_tokens_per_s": fastest.tokens_per_s if fastest else None,
        "diverged_batches": [r.batch_size for r in runs if r.diverged],
        "by_batch": {str(r.batch_size): {"lr": r.lr, "steps": r.steps, "tokens_per_s": r.tokens_per_s,
                                         "final_val_loss": r.final_val_loss, "diverged": r.diverged}
                     for r in runs},
    }


def write_charts(summary: Summary, out_dir: Path, plotly_js: str) -> None:
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    s, runs = summary.settings, summary.runs
    note = (f"fixed budget of {s['token_budget']:,} training tokens per run; peak lr = {s['base_lr']:g} x "
            f"rule '{s['lr_rule']}' (B / {s['ref_batch']}); largest batch by accounting: "
            f"{s['plan']['fit']['batch_size']:,} in {s['plan']['memory_budget_bytes']:,} bytes "
            f"({s['plan']['memory_budget_source']}); grid top {s['plan']['top']:,} "
            f"(limited by {s['plan']['limited_by']})")
    fig = loss_curves(out_dir, runs, "Batch size at a fixed token budget: loss by tokens seen",
                      per_token=True, label=lambda r: f"B={r.batch_size}")
    write_page(fig, out_dir, "loss_curves", summary, plotly_js, [note])
    ok = [r for r in runs if r.tokens_per_s]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=[r.batch_size for r in ok], y=[r.final_val_loss for r in ok],
                             mode="lines+markers", name="final validation loss (nats/token)"))
    fig.add_trace(go.Scatter(x=[r.batch_size for r in ok], y=[r.tokens_per_s for r in ok],
                             mode="lines+markers", name="training tokens/s (median step)"), secondary_y=True)
    fig.update_layout(title="Batch size: loss vs throughput at a fixed token budget", template="plotly_white",
                      xaxis_title="batch size, sequences (log)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(title_text="final validation loss", secondary_y=False)
    fig.update_yaxes(title_text="tokens/s", secondary_y=True)
    write_page(fig, out_dir, "loss_vs_throughput", summary, plotly_js, [note])
