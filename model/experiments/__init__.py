"""Experiments on the from-scratch LM: learning-rate and batch-size sweeps, ablations, the SGD toy.

CLI: `python -m model.experiments {lr-sweep,batch-size,ablations,sgd-toy} [--out DIR] ...`
(model.experiments.cli). Every run goes through `model.trainer.train`; results are one JSONL
log per run, a `summary.json` (typed by `Summary` / `RunRecord`, conventions stated inside) and
plotly HTML charts.

Public API:
  Settings(model_cfg, device=, dtype=, steps=, batch_size=, seed=, ...); tiny_config(vocab_size)
  prepare_corpus(vocab_size, corpus=None, tokens=None, max_bytes=None, cache_dir=...) -> Corpus
  run_lr_sweep(settings, corpus, out_dir, lrs=DEFAULT_LRS) -> Summary
  run_batch_size(settings, corpus, out_dir, *, lr, token_budget=, lr_rule="sqrt", ...) -> Summary
  run_ablations(settings, corpus, out_dir, *, lr, low_lr_factor=0.1) -> Summary
  run_sgd_toy(settings, out_dir, lrs=(1e1, 1e2, 1e3), steps=10) -> Summary
  RunSpec, train_run(spec, train_data, val_data, out_dir, divergence_factor=1.5) -> RunRecord
  ablation_variants(base_cfg, lr, low_lr_factor) -> [(name, cfg, lr)]
  scaled_lr(lr, batch_size, rule, ref_batch), batch_grid(top), sgd_toy_losses(lr, steps, seed)
  Summary, RunRecord, load_summary(path), CONVENTIONS
  redraw_charts(out_dir) -> [html paths]: rewrite a finished sweep's charts from its files alone
"""

from model.experiments.ablations import ablation_variants, run_ablations
from model.experiments.batch_size import batch_grid, run_batch_size, scaled_lr
from model.experiments.data import Corpus, prepare_corpus
from model.experiments.lr_sweep import DEFAULT_LRS, run_lr_sweep
from model.experiments.runner import RunSpec, train_run
from model.experiments.settings import Settings, tiny_config
from model.experiments.sgd_toy import run_sgd_toy, sgd_toy_losses
from model.experiments.summary import CONVENTIONS, RunRecord, Summary, load_summary
from model.experiments.sweep import redraw_charts

__all__ = [
    "CONVENTIONS", "Corpus", "DEFAULT_LRS", "RunRecord", "RunSpec", "Settings", "Summary",
    "ablation_variants", "batch_grid", "load_summary", "prepare_corpus", "redraw_charts", "run_ablations",
    "run_batch_size", "run_lr_sweep", "run_sgd_toy", "scaled_lr", "sgd_toy_losses", "tiny_config",
    "train_run",
]
