"""Decoding measured (the model with its KV cache, instrumented) vs accounting.inference: the cache's
bytes, prefill and decode matmul FLOPs per component (FlopCounterMode), bytes moved per step counted
at dispatch; exact, integer for integer, for multi-head, grouped-query and multi-query attention,
naive and sdpa, on meta and CPU. The dispatch byte counter itself against hand-counted ops."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from accounting import get_preset  # noqa: E402
from accounting.cli_support import run_cli  # noqa: E402
from accounting.config import ModelConfig  # noqa: E402
from validation.inference import BOUND, EXCLUDED, REPEATED, measure_inference  # noqa: E402
from validation.measure_inference import main  # noqa: E402
from validation.traffic import COPIES, OTHER, TrafficCounter, distinct_nbytes  # noqa: E402

EXACT = ("KV cache bytes", "prefill matmul FLOPs", "decode matmul FLOPs", "prefill bytes moved",
         "decode bytes moved")
ALLOWED = (EXCLUDED, REPEATED, BOUND)


def _cfg(**variants) -> ModelConfig:
    return ModelConfig(vocab_size=37, context_length=16, d_model=32, num_layers=2, num_heads=4, d_ff=40,
                       **variants)


def assert_exact(m) -> None:
    for row in m.rows:
        if row.quantity in EXACT and row.symbolic is not None:
            assert row.equal, row
        assert row.reason in ("", *ALLOWED) or row.symbolic is None, row
    assert not m.notes, m.notes


CASES = list(itertools.product((None, 2, 1), ("naive", "sdpa"), ("meta", "cpu")))


@pytest.mark.parametrize("num_kv_heads,attention,device", CASES, ids=str)
def test_cache_flops_and_bytes_exact(num_kv_heads, attention, device):
    cfg = _cfg(num_kv_heads=num_kv_heads, attention=attention)
    m = measure_inference(cfg, device=device, batch_size=3, prompt_tokens=5, new_tokens=4)
    assert_exact(m)
    # by hand (d_k = 8, h_kv*d_k = 8*h_kv): K and V, 2 blocks, 3 sequences of S = 8 tokens, float32
    kv_width = 8 * (num_kv_heads or 4)
    assert m.row("KV cache bytes").measured == 2 * 2 * 3 * 8 * kv_width * 4
    # the decode step at t = 7 attends to 8 keys: QK^T and PV 2 * 3 * 8 * 32 each per block
    core = 2 * 2 * (2 * 3 * 8 * 32)
    scores = (m.row("decode matmul FLOPs", "layers.attn.core").measured if attention == "sdpa" else
              m.row("decode matmul FLOPs", "layers.attn.scores").measured
              + m.row("decode matmul FLOPs", "layers.attn.weighted_values").measured)
    assert scores == core
    assert m.row("decode bytes moved", "KV cache read").measured == 2 * 2 * 3 * 8 * kv_width * 4
    copies = m.row("decode bytes moved", COPIES).measured
    repeats = num_kv_heads is not None and (attention == "naive" or device == "meta")
    assert (copies > 0) == repeats  # CPU's fused sdpa reads the h_kv heads in place


def test_bfloat16_on_cpu_and_a_preset_on_meta():
    assert_exact(measure_inference(_cfg(num_kv_heads=2, norm_position="post", ffn="silu", tie_embeddings=True),
                                   device="cpu", batch_size=2, prompt_tokens=6, new_tokens=3, dtype="bfloat16"))
    m = measure_inference(get_preset("cs336-gpt2-small"), device="meta", batch_size=2, prompt_tokens=100,
                          new_tokens=3)
    assert_exact(m)
    # cs336-gpt2-small at t = 101, float32: the matmul weights 12*(4*768^2 + 3*768*3072) + 50257*768 =
    # 151,843,584 (the head in full) and 25 norm gains of 768, 4 bytes each
    assert m.row("decode bytes moved", "weights read").measured == 4 * (151_843_584 + 25 * 768)


def test_timing_rows_and_the_roofline_ratio_on_cpu():
    m = measure_inference(_cfg(), device="cpu", batch_size=2, prompt_tokens=4, new_tokens=5,
                          peak_flops_per_s=1e11, hbm_bytes_per_s=1e10)
    tpot = m.row("time per output token")
    assert tpot.measured > 0 and tpot.symbolic > 0 and tpot.reason == BOUND
    ratio = m.row("time per output token / roofline bound").measured
    assert ratio == pytest.approx(tpot.measured / tpot.symbolic)
    assert m.row("throughput", "decode tokens/s").measured == pytest.approx(2 / tpot.measured)


def test_traffic_counter_by_hand():
    w = torch.nn.Parameter(torch.ones(6, 4))  # 96 bytes
    table = torch.nn.Parameter(torch.ones(10, 4))
    cache = torch.zeros(2, 3, 8, 4)  # 768 bytes
    x = torch.ones(5, 4)
    with torch.no_grad(), TrafficCounter([w, table], [cache]) as t:
        x @ w.T  # mm reads the transposed view: W once (96), x (80) is "other"
        cache[:, :, 2:3] = torch.ones(2, 3, 1, 4)  # copy_ writes 2*3*1*4*4 = 96 bytes of the cache
        cache[:, :, :3].sum()  # reads 2*3*3*4*4 = 288 bytes of it
        cache[:, :1].expand(2, 5, 8, 4).clone().sum()  # expanded: 2*1*8*4*4 = 256 bytes read once;
        # the clone is a copy of the cache (its 2*5*8*4*4 = 1,280 bytes read by sum)
        table[torch.tensor([1, 7])]  # a gather: the 2 rows (32 bytes), not the table
    assert dict(t.bytes) == {"weights read": 96, OTHER: 80 + 96 + 16, "KV cache written": 96,
                             "KV cache read": 288 + 256, COPIES: 1_280, "embedding rows read": 32}
    assert distinct_nbytes(torch.zeros(3, 1).expand(3, 100)) == 12


@pytest.mark.parametrize("argv,fragment", [
    (["--new-tokens", "1"], "no decode step"),
    (["--prompt-tokens", "15", "--new-tokens", "3"], "exceeds context_length"),
    (["--dtype", "float16"], "--dtype"),
    (["--device", "tpu"], "device"),
    (["--batch-size", "0"], "batch size"),
])
def test_cli_bad_input_one_line_exit_2(argv, fragment, capsys):
    base = ["--preset", "tinystories", "--context-length", "16", "--device", "meta", "--prompt-tokens", "4",
            "--new-tokens", "4"]
    assert run_cli(main, [*base, *argv], prog="python -m validation.measure_inference") == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_json(capsys, tmp_path):
    import json

    out = tmp_path / "m.json"
    assert run_cli(main, ["--preset", "tinystories", "--device", "meta", "--num-kv-heads", "4",
                          "--batch-size", "2", "--prompt-tokens", "8", "--new-tokens", "3",
                          "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["decode_position"] == 9 and not data["notes"]
    assert all(r["rel_diff"] == 0.0 for r in data["rows"] if r["symbolic"] is not None)


@pytest.mark.parametrize("variant", [
    dict(norm="layernorm", positions="learned", ffn="gelu", bias="all", dropout=0.1, tie_embeddings=True),
    dict(norm="layernorm", positions="learned", bias="all", attention="sdpa"),
    dict(bias="qkv", num_kv_heads=2, attention="sdpa"),
], ids=["gpt2-block-naive", "gpt2-block-sdpa", "qwen2-block"])
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_real_architectures_exact(variant, device):
    # the original GPT-2 block (learned position rows are gathered once per step, biases and
    # LayerNorm's parameters read with the weights) and a Qwen2-style block (q/k/v biases, GQA)
    m = measure_inference(_cfg(**variant), device=device, batch_size=3, prompt_tokens=5, new_tokens=4)
    assert_exact(m)
