"""Training time from FLOPs, peak FLOP/s and MFU; MFU from a measured throughput.

MFU (model FLOPs utilization, PaLM) = achieved model FLOP/s / peak FLOP/s, where model FLOPs are the
exact training-step matmul FLOPs (accounting.flops.train_step_flops: forward + backward, no
recompute, no optimizer). Times in seconds.
"""

from __future__ import annotations

from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.flops import train_step_flops


def _check_mfu(mfu: float) -> None:
    if not 0 < mfu <= 1:  # also refuses NaN
        raise UserError(f"mfu must be in (0, 1], got {mfu}")


def training_seconds(cfg: ModelConfig, *, batch_size: int, context_length: int | None = None,
                     steps: int, peak_flops_per_s: float, mfu: float) -> float:
    """Seconds for `steps` training steps of `batch_size` x `context_length` at `mfu` of the peak."""
    _check_mfu(mfu)
    if steps <= 0:
        raise UserError(f"steps must be positive, got {steps}")
    if not 0 < peak_flops_per_s < float("inf"):
        raise UserError(f"peak FLOP/s must be a positive finite number, got {peak_flops_per_s}")
    return steps * train_step_flops(cfg, batch_size, context_length) / (mfu * peak_flops_per_s)


def mfu_from_tokens_per_s(cfg: ModelConfig, tokens_per_s: float, *, peak_flops_per_s: float,
                          context_length: int | None = None, batch_size: int = 1) -> float:
    """MFU of a run that trains `tokens_per_s` tokens per second at this context length.

    FLOPs per token = train_step_flops(B, T) / (B*T) (independent of B)."""
    if not tokens_per_s > 0 or not peak_flops_per_s > 0:
        raise UserError("tokens/s and peak FLOP/s must be positive")
    t = cfg.context_length if context_length is None else context_length
    per_token = train_step_flops(cfg, batch_size, t) / (batch_size * t)
    return tokens_per_s * per_token / peak_flops_per_s


def tokens_per_s_at_mfu(cfg: ModelConfig, mfu: float, *, peak_flops_per_s: float,
                        context_length: int | None = None) -> float:
    """Tokens per second a run at `mfu` of the peak trains (inverse of mfu_from_tokens_per_s)."""
    _check_mfu(mfu)
    t = cfg.context_length if context_length is None else context_length
    return mfu * peak_flops_per_s * t / train_step_flops(cfg, 1, t)
