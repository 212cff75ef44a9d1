"""`ablations`: the baseline against the four CS336 ablations, at equal steps and seed.

Runs (name: config change, peak lr):
  baseline:          pre-norm RMSNorm, RoPE, SwiGLU (the settings' model), lr
  no-rmsnorm:        norm="none", lr (the baseline's rate)
  no-rmsnorm-low-lr: norm="none", lr x low_lr_factor
  post-norm:         norm_position="post", lr
  no-rope:           positions="none" (no position information at all), lr
  silu-ffn:          ffn="silu" with d_ff = 4 x d_model, lr; parameter-matched to SwiGLU when
                     the baseline's d_ff = 8/3 x d_model (3 d d_ff = 2 d 4d); both counts from
                     `accounting` are in the findings, with their difference.
Every run starts from the same seed, so data order is identical; only the variant changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accounting.config import ModelConfig
from accounting.errors import UserError
from model.experiments.data import Corpus
from model.experiments.plots import fmt_cell, loss_curves, write_page
from model.experiments.runner import RunSpec
from model.experiments.settings import Settings
from model.experiments.summary import RunRecord, Summary
from model.experiments.sweep import Sweep

DEFAULT_LOW_LR_FACTOR = 0.1


def ablation_variants(base: ModelConfig, lr: float, low_lr_factor: float = DEFAULT_LOW_LR_FACTOR
                      ) -> list[tuple[str, ModelConfig, float]]:
    """(name, config, peak lr) of each run, baseline first (see the module docstring)."""
    if not 0 < low_lr_factor < 1:
        raise UserError(f"low lr factor must be in (0, 1), got {low_lr_factor}")
    no_norm = base.replace(norm="none")
    return [
        ("baseline", base, lr),
        ("no-rmsnorm", no_norm, lr),
        ("no-rmsnorm-low-lr", no_norm, lr * low_lr_factor),
        ("post-norm", base.replace(norm_position="post"), lr),
        ("no-rope", base.replace(positions="none"), lr),
        ("silu-ffn", base.replace(ffn="silu", d_ff=4 * base.d_model), lr),
    ]


def run_ablations(settings: Settings, corpus: Corpus, out_dir: str | Path, *, lr: float,
                  low_lr_factor: float = DEFAULT_LOW_LR_FACTOR, lr_source: str = "--lr") -> Summary:
    """Train each variant for `settings.steps` steps; write logs, summary.json and one overlaid chart."""
    variants = ablation_variants(settings.model_cfg, lr, low_lr_factor)
    extra = {"base_lr": lr, "base_lr_source": lr_source, "low_lr_factor": low_lr_factor}
    sweep = Sweep("ablations", settings, corpus, out_dir, len(variants), extra)
    for name, cfg, run_lr in variants:
        sweep.run(RunSpec(name, name.removesuffix("-low-lr"), cfg, settings.train_config(run_lr)))
    summary = sweep.finish(ablation_findings(sweep.summary.runs))
    write_charts(summary, sweep.out_dir, settings.plotly_js)
    return summary


def ablation_findings(runs: list[RunRecord]) -> dict[str, Any]:
    """Each run's final losses and their change from the baseline (+ = worse), parameter counts."""
    base = next(r for r in runs if r.name == "baseline")
    silu = next((r for r in runs if r.name == "silu-ffn"), None)

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    by_run = {r.name: {"lr": r.lr, "final_val_loss": r.final_val_loss, "final_train_loss": r.final_train_loss,
                       "val_loss_change_vs_baseline": delta(r.final_val_loss, base.final_val_loss),
                       "train_loss_change_vs_baseline": delta(r.final_train_loss, base.final_train_loss),
                       "steps": r.steps, "diverged": r.diverged, "parameters": r.parameters}
              for r in runs}
    findings: dict[str, Any] = {"equal_steps": base.steps_planned, "by_run": by_run}
    if silu is not None:
        findings["parameter_match"] = {
            "swiglu_d_ff": base.config["d_ff"], "silu_d_ff": silu.config["d_ff"],
            "swiglu_parameters": base.parameters, "silu_parameters": silu.parameters,
            "swiglu_non_embedding_parameters": base.non_embedding_parameters,
            "silu_non_embedding_parameters": silu.non_embedding_parameters,
            "difference": silu.parameters - base.parameters}
    return findings


def write_charts(summary: Summary, out_dir: Path, plotly_js: str) -> None:
    f = summary.findings
    fig = loss_curves(out_dir, summary.runs, "Ablations at equal steps: loss by step",
                      label=lambda r: f"{r.name} (lr {r.lr:g})")
    notes = [f"{name}: final val loss {fmt_cell('loss', v['final_val_loss'])} nats/token, change vs "
             f"baseline {_signed(v['val_loss_change_vs_baseline'])}" for name, v in f["by_run"].items()]
    if "parameter_match" in f:
        m = f["parameter_match"]
        notes.append(f"parameters (accounting): SwiGLU d_ff={m['swiglu_d_ff']} {m['swiglu_parameters']:,}; "
                     f"SiLU d_ff={m['silu_d_ff']} {m['silu_parameters']:,} (difference {m['difference']:+,})")
    write_page(fig, out_dir, "loss_curves", summary, plotly_js, notes)


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"
