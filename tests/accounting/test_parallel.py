"""Per-GPU memory and communication of parallel layouts against hand-derived integers (derivations
in the comments), the model's own parameters, and the report / CLI surface. The measured side
(spawned gloo ranks) is tests/validation/test_distributed.py."""

from __future__ import annotations

import json

import pytest

from accounting import activation_bytes, build_report, render
from accounting.cli import main
from accounting.cli_support import run_cli
from accounting.communication import DDP_BUCKET_BYTES, DDP_FIRST_BUCKET_BYTES, collectives, ddp_buckets
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.hardware import get_link
from accounting.layout import Layout
from accounting.rows import evaluate
from accounting.symbols import values
from accounting.parallel import (
    largest_per_rank_batch, parameter_tensors, per_rank_memory_rows, rank_state_bytes,
)

# V=37 (odd: FSDP pads), d=16, L=2, h=2, d_ff=24; P = 592 + 2*2208 + 16 + 592 = 5616 parameters
# (block: q, k, v, o 4*256 + ln1, ln2 2*16 + w1, w2, w3 3*16*24 = 2208)
CFG = ModelConfig(vocab_size=37, context_length=8, d_model=16, num_layers=2, num_heads=2, d_ff=24)


def _bytes(cfg, layout, batch=2):
    return {r.name: r.value for r in per_rank_memory_rows(cfg, layout, batch)}


def test_ddp_and_zero1_hold_everything_but_zero1_partitions_adamw():
    ddp = _bytes(CFG, Layout(2, "ddp"))
    assert ddp["parameters"] == ddp["gradients"] == 4 * 5616 and ddp["optimizer_state"] == 8 * 5616
    zero1 = _bytes(CFG, Layout(4, "zero1"), batch=4)
    assert zero1["parameters"] == 4 * 5616 and zero1["optimizer_state"] == 8 * 1404  # 5616 / 4


def test_fsdp_pads_each_parameters_dim_0_to_a_multiple_of_the_ranks():
    # N_dp = 2, rank 0 (padded chunks): embedding and head ceil(37/2) = 19 rows x 16 = 304 each;
    # a block: q, k, v, o 8x16 = 4*128, ln1, ln2 8 each, w1, w3 12x16 = 192 each, w2 8x24 = 192
    # = 1104; ln_final 8. Total 304 + 2*1104 + 8 + 304 = 2824 elements.
    zero3 = _bytes(CFG, Layout(2, "zero3"))
    assert zero3["parameters"] == zero3["gradients"] == 4 * 2824
    assert zero3["optimizer_state"] == 8 * 2824  # rank 0 holds the full chunk
    # rank 1 stores the same padded chunks, but AdamW state follows its 18-row embedding and head
    rank1 = rank_state_bytes(CFG, Layout(2, "zero3"), dp_rank=1)
    assert rank1["parameters"] == 4 * 2824 and rank1["optimizer_state"] == 8 * (2824 - 2 * 16)
    # N_dp = 4: ceil(37/4) = 10 rows; the last rank holds 37 - 30 = 7 of the embedding's rows
    assert rank_state_bytes(CFG, Layout(4, "zero2"), dp_rank=3)["optimizer_state"] == 8 * (
        2 * 7 * 16 + 2 * (4 * 4 * 16 + 2 * 4 + 2 * 6 * 16 + 4 * 24) + 4)


def test_tensor_parallelism_splits_projections_and_replicates_the_rest():
    # K = 2: q, k, v keep 8 of 16 rows, o 8 of 16 columns (4*128); w1, w3 12 of 24 rows, w2 12
    # of 24 columns (3*192); norms, embedding, head whole: 592 + 2*(512 + 32 + 576) + 16 + 592
    tp = _bytes(CFG, Layout(2, "ddp", 2), batch=1)
    assert tp["parameters"] == 4 * 3440
    # 2-D (N_dp = 2 x K = 2): FSDP chunks the TP-local tensors: q 4x16, o 8x8, w1 6x16, w2 8x12,
    # ln 8, embedding / head 19x16: 304 + 2*(3*64 + 64 + 2*8 + 2*96 + 96) + 8 + 304 = 1736
    assert _bytes(CFG, Layout(4, "zero3", 2))["parameters"] == 4 * 1736


def test_activations_per_rank_split_batch_and_tensor_parallel_shapes():
    one = activation_bytes(CFG, 1)  # one device, B = 1 (checked against the saved tensors elsewhere)
    assert _bytes(CFG, Layout(2, "zero2"), batch=2)["activations"] == one  # b = 1 per rank
    # TP: the naive attention core saves 3 s B T d + T^2 + 2 s B h T^2 + s B h T and the head merge
    # s B T d, the FFN 4 s B T d_ff + s B T d_ff: all halved at K = 2 except the bool mask T^2 = 64
    s, T, d, h, dff, L = 4, 8, 16, 2, 24, 2
    local = L * ((3 * s * T * d + 2 * s * h * T * T + s * h * T + s * T * d + 5 * s * T * dff) // 2)
    assert _bytes(CFG, Layout(2, "ddp", 2), batch=1)["activations"] == one - local


def test_parameter_tensors_are_the_models_in_forward_order():
    import torch

    from model.loss import cross_entropy
    from model.transformer import TransformerLM

    for cfg in (CFG, CFG.replace(norm_position="post", ffn="silu", tie_embeddings=True),
                CFG.replace(num_heads=4, num_kv_heads=2, norm="none")):
        model = TransformerLM(cfg)
        ready, names = [], {p: n for n, p in model.named_parameters()}
        for p in model.parameters():
            p.register_post_accumulate_grad_hook(lambda p: ready.append(names[p]))
        x = torch.randint(0, cfg.vocab_size, (1, 8))
        cross_entropy(model(x), x).backward()
        first_use = [n for n in reversed(ready) if not n.startswith("layers.1.")]
        want = [t.name.replace("layers.", "layers.0.") for t in parameter_tensors(cfg)]
        assert first_use == want
        shapes = {n: p.numel() for n, p in model.named_parameters()}
        for t in parameter_tensors(cfg):
            numel = evaluate(t.rows * t.cols, values(cfg))
            assert shapes[t.name.replace("layers.", "layers.0.")] == numel


def test_ddp_buckets_fill_in_gradient_ready_order():
    # caps 1 MiB then 25 MiB; a bucket closes once it holds >= its cap
    assert ddp_buckets([600_000, 500_000, 10, 30_000_000, 5]) == [[0, 1], [2, 3], [4]]
    # V=1000, d=128, d_ff=344: ready order lm_head 512,000 B, ln_final 512, then the last block's
    # w2, w3, w1 (176,128 each), ln2 512, output_proj 65,536: 1,106,944 >= 1 MiB closes bucket 1
    big = ModelConfig(vocab_size=1000, context_length=16, d_model=128, num_layers=2, num_heads=4,
                      d_ff=344)
    calls = collectives(big, Layout(2, "ddp"), batch_size=2)
    assert [c.bytes for c in calls] == [1_106_944, 4 * 651_904 - 1_106_944]
    assert DDP_FIRST_BUCKET_BYTES == 2**20 and DDP_BUCKET_BYTES == 25 * 2**20


def test_fsdp_and_tensor_parallel_collectives():
    calls = collectives(CFG, Layout(4, "zero3", 2), batch_size=4)
    kinds = {(c.collective, c.phase, c.group): (c.count, c.bytes) for c in calls
             if "block" in c.name or c.group == "tp"}
    # a block's gathered TP-local chunks: N_dp * (3*64 + 64 + 2*8 + 2*96 + 96) * 4 bytes
    block = 2 * 560 * 4
    assert kinds[("all_gather", "forward", "dp")] == (2, block)
    assert kinds[("all_gather", "backward", "dp")] == (2, block)
    assert kinds[("reduce_scatter", "backward", "dp")] == (2, block)
    # TP: 2 all-reduces per block each way of b*T*d float32 = 2*8*16*4 bytes
    assert kinds[("all_reduce", "forward", "tp")] == (4, 1024)
    assert kinds[("all_reduce", "backward", "tp")] == (4, 1024)
    assert not any(c.phase == "backward" and c.collective == "all_gather"
                   for c in collectives(CFG, Layout(2, "zero2"), batch_size=2))


def test_ring_time():
    link = get_link("nvlink-h100")  # 450 GB/s per direction
    call = next(c for c in collectives(CFG, Layout(8, "ddp"), batch_size=8))
    assert call.traffic_bytes == 2 * 7 / 8 * 4 * 5616  # all-reduce: 2(n-1)/n S
    assert call.seconds(link) == pytest.approx(2 * 7 / 8 * 4 * 5616 / 450e9)


def test_ddp_peak_is_the_step_with_its_buckets_held():
    """DDP without TP: the rows are the peak event of the per-rank step with every gradient alive
    from the start (DDP's buckets); they sum to the peak, the gradients are 4P (hand count above),
    and the largest batch is the last whose peak fits. (Measured equal with MemTracker in
    tests/validation/test_distributed.py.)"""
    from accounting.timeline import timeline_peak_bytes

    section = build_report(CFG, batch_size=4, layout=Layout(2, "ddp")).parallelism
    rows = {r.name: r.value for r in section.per_rank}
    assert rows["gradients"] == 4 * 5616 and rows["weights"] == 4 * 5616
    assert sum(rows.values()) == section.peak_bytes == timeline_peak_bytes(CFG, 2, gradient_buckets=True)
    assert section.peak_bytes > timeline_peak_bytes(CFG, 2)  # one device frees its gradients
    ckpt = build_report(CFG, batch_size=4, layout=Layout(2, "ddp"), checkpointing=True).parallelism
    assert ckpt.peak_bytes == timeline_peak_bytes(CFG, 2, checkpointing=True, gradient_buckets=True)
    gpt2 = ModelConfig()
    fit = largest_per_rank_batch(gpt2, Layout(8, "ddp"), 80 * 2**30)
    peak = lambda b: timeline_peak_bytes(gpt2, b, gradient_buckets=True)
    assert peak(fit.per_rank_batch) <= 80 * 2**30 < peak(fit.per_rank_batch + 1)
    assert fit.global_batch == 8 * fit.per_rank_batch


def test_largest_per_rank_batch_is_the_last_that_fits():
    gpt2 = ModelConfig()
    for layout in (Layout(8, "zero3"), Layout(8, "ddp", 2), Layout(8, "zero2", 4)):
        fit = largest_per_rank_batch(gpt2, layout, 80 * 2**30)
        peak = lambda b: sum(r.value for r in per_rank_memory_rows(gpt2, layout, b * layout.data_parallel))
        assert peak(fit.per_rank_batch) <= 80 * 2**30 < peak(fit.per_rank_batch + 1)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(world_size=4, tensor_parallel=3), "must divide the world size 4"),
    (dict(world_size=2, strategy="zero4"), "parallel strategy must be one of"),
    (dict(world_size=0), "world size must be a positive integer"),
])
def test_bad_layouts(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        Layout(**kwargs)


def test_report_json_parallelism_section():
    data = json.loads(render(build_report(CFG, batch_size=4, layout=Layout(4, "zero3", 2),
                                          link="PCIe-5"), "json"))["parallelism"]
    assert data["layout"] == {"world_size": 4, "strategy": "zero3", "tensor_parallel": 2,
                              "data_parallel": 2, "global_batch": 4, "per_rank_batch": 2}
    per_rank = data["per_rank"]["components"]
    assert [c["name"] for c in per_rank][:3] == ["parameters", "gradients", "optimizer_state"]
    assert all({"name", "value", "formula"} <= set(c) for c in per_rank)
    assert sum(c["value"] for c in per_rank) == data["per_rank"]["total"]
    assert all({"collective", "bytes", "count", "seconds"} <= set(c) for c in data["communication"])
    assert data["link"]["name"] == "PCIe-5"
    assert "parallelism" not in json.loads(render(build_report(CFG, batch_size=4), "json"))


@pytest.mark.parametrize("argv,needle", [
    (["--gpus", "3", "--tensor-parallel", "3"], "must divide num_heads (2)"),
    (["--gpus", "4", "--batch-size", "6"], "global batch 6 must be a multiple of the 4"),
    (["--gpus", "4", "--tensor-parallel", "3"], "must divide the world size 4"),
    (["--gpus", "2", "--link", "smoke-signals"], "invalid choice"),
])
def test_report_cli_bad_layouts_are_one_line(capsys, tmp_path, argv, needle):
    base = ["report", "--vocab-size", "37", "--d-model", "16", "--num-heads", "2", "--d-ff", "24",
            "--out", str(tmp_path / "r.json")]
    assert run_cli(main, base + argv, prog="python -m accounting") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "r.json").exists()
