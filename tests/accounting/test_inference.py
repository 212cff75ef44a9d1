"""Inference accounting against hand-derived integers: KV cache, prefill and decode FLOPs, bytes per
step, the roofline, serving capacity; the `inference` CLI (JSON keys, bad input: one line, exit 2)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import ModelConfig, get_preset
from accounting.cli import main
from accounting.cli_support import run_cli
from accounting.hardware import GPUS, custom_gpu
from accounting.inference import (
    decode_byte_rows, decode_flops_rows, kv_cache_bytes, prefill_byte_rows, prefill_flops_rows, weight_bytes,
)
from accounting.inference_render import render_inference
from accounting.inference_report import build_inference_report, sum_of_max

# V=37, d=32, L=2, h=4, h_kv=2 (d_k = 8, K/V width 16), d_ff=40, SwiGLU, pre-norm RMSNorm, untied.
# Parameters: embedding 37*32 = 1,184; per block ln1 32 + q 1,024 + k 512 + v 512 + o 1,024 + ln2 32
# + w1, w2, w3 3*1,280 = 6,976; two blocks 13,952; ln_final 32; lm_head 1,184: total 16,352.
# Matmul weights N_mm = 2*(1,024 + 512 + 512 + 1,024 + 3,840) + 1,184 = 15,008; norm gains 160.
CFG = ModelConfig(vocab_size=37, context_length=16, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                  d_ff=40)


def test_kv_cache_and_weights_by_hand():
    # K and V, 2 blocks, B = 3 sequences of S = 8 tokens, 16 features, 4 bytes: 2*2*3*8*16*4
    assert kv_cache_bytes(CFG, 3, 8) == 6_144
    assert kv_cache_bytes(CFG, 3, 8, "bfloat16") == 3_072
    assert weight_bytes(CFG) == 16_352 * 4 and weight_bytes(CFG, "int8") == 16_352
    assert weight_bytes(CFG, "int4") == 8_176
    # an odd parameter count: V=5, d=3, h=1, L=1, d_ff=1, SiLU, no norm, tied: 15 + 4*9 + 2*3 = 57
    odd = ModelConfig(vocab_size=5, context_length=4, d_model=3, num_layers=1, num_heads=1, d_ff=1,
                      norm="none", positions="none", ffn="silu", tie_embeddings=True)
    assert weight_bytes(odd, "int4") == 29  # 28.5 bytes, rounded up


def test_step_flops_by_hand():
    # decode at t: 2*B*N_mm + 4*B*L*d*(t + 1) = 6*15,008 + 768*(t + 1)
    assert sum(r.value for r in decode_flops_rows(CFG, 3, 7)) == 90_048 + 768 * 8 == 96_192
    assert sum(r.value for r in decode_flops_rows(CFG, 3, 0)) == 90_048 + 768
    # prefill of P = 5: blocks 2*B*P*L*6,912 = 414,720; QK^T + PV 4*L*B*P^2*d = 19,200; head on one
    # position 2*B*d*V = 7,104
    rows = {r.name: r.value for r in prefill_flops_rows(CFG, 3, 5)}
    assert sum(rows.values()) == 441_024
    assert rows["lm_head"] == 7_104 and rows["layers.attn.k_proj"] == 2 * 2 * 3 * 5 * 512


def test_bytes_moved_by_hand():
    # decode at t = 7, float32: weights (15,008 + 160)*4 = 60,672; embedding rows B*d*4 = 384;
    # KV read 2*L*B*(t+1)*16*4 = 6,144; KV written 2*L*B*16*4 = 768
    got = {r.name: r.value for r in decode_byte_rows(CFG, 3, 7)}
    assert got == {"weights read": 60_672, "embedding rows read": 384, "KV cache read": 6_144,
                   "KV cache written": 768}
    # prefill of P = 5: embedding rows B*P*d*4 = 1,920; KV read and written 2*L*B*P*16*4 = 3,840 each
    got = {r.name: r.value for r in prefill_byte_rows(CFG, 3, 5)}
    assert got == {"weights read": 60_672, "embedding rows read": 1_920, "KV cache read": 3_840,
                   "KV cache written": 3_840}


def test_tied_head_is_read_in_full_and_its_rows_gathered():
    tied = CFG.replace(tie_embeddings=True)
    # the same matrix: read whole as the LM head (37*32) plus the B gathered rows; weights stored once
    assert {r.name: r.value for r in decode_byte_rows(tied, 3, 7)}["weights read"] == 60_672
    assert weight_bytes(tied) == (16_352 - 1_184) * 4


def test_report_roofline_and_capacity_by_hand():
    gpu = custom_gpu(1e6, 100_000, hbm_bytes_per_s=1e4)
    r = build_inference_report(CFG, batch_size=3, prompt_tokens=5, new_tokens=4, dtype="float32", gpu=gpu)
    assert r.request.sequence_tokens == 8 and r.decode_position == 7
    assert r.kv_cache_bytes.value == 6_144 and r.decode.flops_total == 96_192
    assert r.decode.bytes_total == 67_968 and r.prefill.bytes_total == 70_272
    assert r.decode.bound == "memory" and r.decode.seconds == pytest.approx(6.7968)
    assert r.prefill.compute_seconds == pytest.approx(0.441024)
    assert r.time_to_first_token_s == pytest.approx(7.0272)  # memory-bound prefill at 10 kB/s
    # decode steps t = 5, 6, 7 move 61,824 + 768*(t + 1) bytes: 66,432, 67,200, 67,968 -> mean 67,200
    assert r.time_per_output_token_s == pytest.approx(6.72)
    assert r.tokens_per_s == pytest.approx(3 / 6.72)
    assert r.ridge_point == pytest.approx(100.0)
    # capacity: (100,000 - 65,408) // 256 bytes per token = 135 tokens: 16 sequences of 8, or 45 tokens x 3
    assert r.capacity.kv_token_capacity == 135 and r.largest_batch == 16 and r.largest_context == 45
    single = build_inference_report(CFG, batch_size=1, prompt_tokens=16, new_tokens=1, dtype="float32", gpu=gpu)
    assert single.time_per_output_token_s is None and single.tokens_per_s is None
    tiny_budget = build_inference_report(CFG, batch_size=1, prompt_tokens=4, new_tokens=2, dtype="float32",
                                         gpu=gpu, memory_budget_bytes=1_000)
    assert tiny_budget.largest_batch is None and tiny_budget.capacity.kv_token_capacity is None


def test_int4_what_if_reads_half_a_byte_per_weight_and_computes_in_bf16():
    r = build_inference_report(CFG, batch_size=1, prompt_tokens=4, new_tokens=4, dtype="int4", gpu="H100-SXM")
    assert r.dtype.compute == "bfloat16" and r.peak_flops_per_s == GPUS["H100-SXM"].peak("bfloat16")
    by = {x.name: x.value for x in r.decode.bytes}
    assert by["weights read"] == 15_168 // 2 and by["KV cache written"] == 2 * 2 * 16 * 2
    assert r.hbm_bytes_per_s == 3.35e12


@settings(max_examples=200, deadline=None)
@given(st.integers(-50, 50), st.integers(-5, 5), st.integers(-50, 50), st.integers(-5, 5),
       st.integers(0, 40), st.integers(0, 40))
def test_sum_of_max_equals_the_loop(f0, f1, g0, g1, lo, n):
    hi = lo + n - 1
    brute = sum(max(f0 + f1 * x, g0 + g1 * x) for x in range(lo, hi + 1))
    assert sum_of_max((f0 / 3, f1 / 3), (g0 / 3, g1 / 3), lo, hi) == pytest.approx(brute / 3, abs=1e-9)


def test_gpu_table_has_bandwidths_with_sources():
    expected = {"H100-SXM": 3.35e12, "H200": 4.8e12, "A100-80GB": 2.039e12, "A100-40GB": 1.555e12,
                "H100-PCIe": 2.0e12}
    for name, bandwidth in expected.items():
        assert GPUS[name].hbm_bytes_per_s == bandwidth and "datasheet" in GPUS[name].bandwidth_source


def test_cli_json_keys_and_values(capsys):
    assert run_cli(main, ["inference", "--preset", "cs336-gpt2-small", "--batch-size", "8", "--prompt-tokens", "512",
                          "--new-tokens", "256", "--dtype", "bfloat16", "--gpu", "H100-SXM",
                          "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    keys = {"kv_cache_bytes", "prefill_flops", "decode_flops", "decode_bytes_per_token", "time_to_first_token_s",
            "time_per_output_token_s", "largest_batch", "weight_bytes", "tokens_per_s",
            "prefill_arithmetic_intensity", "decode_arithmetic_intensity"}
    assert keys <= set(data) and all({"value", "unit", "formula"} <= set(data[k]) for k in keys)
    # cs336-gpt2-small, bf16: 2 * 12 blocks * 768 * 2 bytes = 36,864 per token; B = 8, S = 512 + 256 - 1
    assert data["kv_cache_bytes"]["value"] == 36_864 * 8 * 767
    # 2*B*N_mm + 4*B*L*d*(t+1), N_mm = 12*(4*768^2 + 3*768*3072) + 50257*768, t = 766
    assert data["decode_flops"]["value"] == 8 * (2 * (12 * (4 * 768**2 + 3 * 768 * 3072) + 50257 * 768)
                                                 + 4 * 12 * 768 * 767)
    assert data["gpu"]["hbm_bytes_per_s"] == 3.35e12 and data["request"]["sequence_tokens"] == 767


@pytest.mark.parametrize("fmt,marker", [("table", "Roofline"), ("markdown", "| quantity |"),
                                        ("latex", r"\begin{tabular}")])
def test_text_renderers(fmt, marker):
    text = render_inference(build_inference_report(get_preset("tinystories"), batch_size=2, prompt_tokens=100,
                                                   new_tokens=50, gpu="A100-80GB"), fmt)
    assert marker in text and "KV cache" in text


@pytest.mark.parametrize("argv,fragment", [
    (["--prompt-tokens", "1000", "--new-tokens", "100"], "exceeds context_length"),
    (["--batch-size", "0"], "batch size"),
    (["--new-tokens", "0"], "new tokens"),
    (["--prompt-tokens", "-2"], "prompt tokens"),
    (["--dtype", "fp8"], "--dtype"),
    (["--gpu", "TPU9"], "unknown GPU"),
    (["--hbm-bandwidth", "fast"], "--hbm-bandwidth"),
])
def test_bad_input_one_line_exit_2(argv, fragment, capsys):
    assert run_cli(main, ["inference", "--preset", "cs336-gpt2-small", *argv], prog="python -m accounting") == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_every_gpu_and_dtype_renders():
    rng = random.Random(0)
    for gpu in GPUS:
        for dtype in ("float32", "bfloat16", "float16", "int8", "int4"):
            b = rng.randint(1, 64)
            r = build_inference_report(get_preset("cs336-gpt2-medium"), batch_size=b, prompt_tokens=300,
                                       new_tokens=200, dtype=dtype, gpu=gpu)
            assert r.time_per_output_token_s > 0 and r.decode.bound == "memory"
            json.loads(render_inference(r, "json"))
