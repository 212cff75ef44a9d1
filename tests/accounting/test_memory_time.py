"""Peak memory composition, the solved largest batch, training time / MFU and dataset arithmetic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import (
    GPUS, activation_bytes, adamw_state_bytes, chinchilla_tokens, dataset_estimate, get_gpu, get_preset,
    largest_batch_size, mfu_from_tokens_per_s, peak_memory_bytes, token_dtype, total_parameters,
    train_step_flops, training_seconds,
)
from accounting.training_time import tokens_per_s_at_mfu


def test_peak_memory_float32_and_bf16_by_hand():
    cfg = get_preset("cs336-gpt2-small")
    n = total_parameters(cfg)
    act32 = activation_bytes(cfg, 2, 512, dtype="float32")
    assert peak_memory_bytes(cfg, 2, 512, "float32") == 4 * n + 4 * n + 8 * n + act32
    act16 = activation_bytes(cfg, 2, 512, dtype="bfloat16")
    assert peak_memory_bytes(cfg, 2, 512, "bfloat16") == (4 + 2 + 4 + 8) * n + act16
    assert adamw_state_bytes(cfg) == 8 * n


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpt2_xl_in_80gb(dtype):
    cfg = get_preset("cs336-gpt2-xl")
    budget = 80 * 10**9
    fit = largest_batch_size(cfg, budget, dtype=dtype)
    assert peak_memory_bytes(cfg, fit.batch_size, dtype=dtype) <= budget if fit.batch_size else True
    assert peak_memory_bytes(cfg, fit.batch_size + 1, dtype=dtype) > budget
    assert fit.batch_size == math.floor(fit.exact_solution)


@settings(max_examples=40, deadline=None)
@given(budget_gib=st.floats(min_value=1, max_value=2000), t=st.sampled_from([128, 256, 1024]),
       dtype=st.sampled_from(["float32", "bfloat16"]))
def test_largest_batch_fits_and_one_more_does_not(budget_gib, t, dtype):
    cfg = get_preset("cs336-gpt2-small")
    budget = int(budget_gib * 2**30)
    one, two = peak_memory_bytes(cfg, 1, t, dtype), peak_memory_bytes(cfg, 2, t, dtype)
    fixed = one - (two - one)  # peak memory is linear in B
    if budget < fixed:
        with pytest.raises(ValueError, match="smaller than the weights"):
            largest_batch_size(cfg, budget, t, dtype)
        return
    fit = largest_batch_size(cfg, budget, t, dtype)
    assert fit.fixed_bytes == fixed
    if fit.batch_size:
        assert peak_memory_bytes(cfg, fit.batch_size, t, dtype) <= budget
    assert peak_memory_bytes(cfg, fit.batch_size + 1, t, dtype) > budget


def test_gpu_table():
    assert {"A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200"} <= set(GPUS)
    h100 = get_gpu("h100-sxm")
    assert h100.peak("bfloat16") == 989.4e12 and h100.memory_bytes == 80 * 2**30
    assert get_gpu("A100-80GB").peak("float32") == 19.5e12
    with pytest.raises(ValueError, match="unknown GPU"):
        get_gpu("TPU")


def test_training_time_by_hand():
    cfg = get_preset("cs336-gpt2-small")
    flops = train_step_flops(cfg, 8, 1024)
    seconds = training_seconds(cfg, batch_size=8, context_length=1024, steps=1000,
                               peak_flops_per_s=312e12, mfu=0.4)
    assert seconds == pytest.approx(1000 * flops / (0.4 * 312e12), rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(mfu=st.floats(min_value=0.01, max_value=1.0), t=st.sampled_from([64, 512, 1024]),
       preset=st.sampled_from(["cs336-gpt2-small", "tinystories"]))
def test_mfu_round_trip(mfu, t, preset):
    cfg = get_preset(preset)
    peak = get_gpu("H100-SXM").peak("bfloat16")
    tps = tokens_per_s_at_mfu(cfg, mfu, peak_flops_per_s=peak, context_length=t)
    assert mfu_from_tokens_per_s(cfg, tps, peak_flops_per_s=peak, context_length=t) == pytest.approx(mfu)
    # and consistent with the time of one step: B*T tokens in training_seconds(steps=1)
    step_s = training_seconds(cfg, batch_size=4, context_length=t, steps=1, peak_flops_per_s=peak, mfu=mfu)
    assert 4 * t / step_s == pytest.approx(tps)


def test_dataset_arithmetic():
    est = dataset_estimate(10**9, 4.0, 50257, tokenizer_bytes_per_s=2 * 10**6)
    assert est.tokens == 250_000_000 and est.token_dtype == "uint16"
    assert est.storage_bytes == 500_000_000 and est.tokenize_seconds == 500.0
    assert token_dtype(65_536) == "uint16" and token_dtype(65_537) == "uint32"
    assert dataset_estimate(1000, 3.0, 100_000).storage_bytes == 333 * 4
    assert chinchilla_tokens(124_000_000) == 2_480_000_000
    with pytest.raises(ValueError):
        dataset_estimate(100, 0.0, 10)
