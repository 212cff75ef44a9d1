"""Settings shared by the LM experiments: the model, the schedule rule and the run-loop knobs.

The default model fits a 2-core CPU in minutes: d_model 96, 2 layers, 4 heads, context 64,
d_ff 256 = 8/3 x d_model (so SwiGLU's 3 x d_model x d_ff equals the SiLU ablation's
2 x d_model x 4 d_model exactly), torch's fused attention (`attention="sdpa"`, same math as the
reference path, faster), vocab = the BPE tokenizer's (1,024 by default).

Schedule rule of every LM run (see summary.CONVENTIONS["lr"]): AdamW at peak `lr`, linear warmup
over 10% of the steps, cosine decay to lr/10 at the last step, weight decay 0.1, betas
(0.9, 0.95), gradient clipping at global norm 1.0 (the trainer's defaults).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from accounting.config import ModelConfig
from accounting.errors import UserError
from model.train_config import TrainConfig

DEFAULT_VOCAB = 1_024
WARMUP_FRACTION = 0.1
MIN_LR_RATIO = 0.1


def tiny_config(vocab_size: int = DEFAULT_VOCAB) -> ModelConfig:
    """The default experiment model (see the module docstring)."""
    return ModelConfig(vocab_size=vocab_size, context_length=64, d_model=96, num_layers=2,
                       num_heads=4, d_ff=256, attention="sdpa")


EXPERIMENT_TRAINING = TrainConfig(steps=300, batch_size=16, eval_interval=50, eval_batches=8,
                                  checkpoint_interval=0, log_interval=1)
"""The experiments' run-loop defaults (device, dtype, steps, batch, seed, eval cadence); each run's
learning rate and schedule come from `Settings.train_config`."""


@dataclass(frozen=True)
class Settings:
    """What the LM subcommands share: the model, the training run's base config and the sweep's
    own knobs. `training` is a TrainConfig whose device, dtype, steps, batch_size, seed,
    eval_interval and eval_batches every run uses (its lr and schedule are set per run).
    divergence_factor: see runner. plotly_js:
    "shared" | "inline" | "cdn"."""

    model_cfg: ModelConfig
    training: TrainConfig = EXPERIMENT_TRAINING
    divergence_factor: float = 1.5
    progress: bool = True
    plotly_js: str = "shared"

    def __post_init__(self) -> None:
        if not self.divergence_factor > 1:
            raise UserError(f"divergence_factor must be > 1, got {self.divergence_factor}")
        if self.plotly_js not in ("shared", "inline", "cdn"):
            raise UserError(f"plotly_js must be shared, inline or cdn; got {self.plotly_js!r}")

    def train_config(self, lr: float, *, batch_size: int | None = None, steps: int | None = None,
                     eval_interval: int | None = None, eval_batches: int | None = None) -> TrainConfig:
        """The TrainConfig of one run at peak `lr` under the module's schedule rule."""
        if not lr > 0:
            raise UserError(f"learning rate must be positive, got {lr}")
        base = self.training
        steps = base.steps if steps is None else steps
        given = {"batch_size": batch_size, "eval_interval": eval_interval, "eval_batches": eval_batches}
        return base.replace(
            steps=steps, max_lr=lr, min_lr=lr * MIN_LR_RATIO, warmup_iters=round(WARMUP_FRACTION * steps),
            cosine_cycle_iters=steps, **{k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model_cfg"] = self.model_cfg.to_dict()
        data["training"] = self.training.to_dict()
        data["schedule"] = (f"AdamW, linear warmup {WARMUP_FRACTION:.0%} of steps, cosine to "
                            f"{MIN_LR_RATIO:g} x lr at the last step, weight decay 0.1, clip 1.0")
        return data
