"""The fast paths through the training loop and CLI: same trajectories as the reference path,
MFU logged live from a given peak FLOP/s with its source, one-line errors for bad input."""

import json

import numpy as np
import pytest
import torch

from accounting import train_step_flops
from accounting.cli_support import run_cli
from accounting.config import ModelConfig
from model import TrainConfig
from model.trainer import train
from model.fast_optim import FastAdamW

CFG = ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=48)
TCFG = TrainConfig(batch_size=4, steps=6, max_lr=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=0,
                   checkpoint_interval=0, log_interval=1, val_fraction=0.0, seed=3)
DATA = np.random.default_rng(0).integers(0, 64, size=2_000).astype(np.uint16)


def test_foreach_run_is_bit_identical_and_fused_close():
    ref = train(CFG, TCFG, DATA).losses()
    assert train(CFG, TCFG.replace(optimizer="foreach"), DATA).losses() == ref
    fused = train(CFG, TCFG.replace(optimizer="fused"), DATA).losses()
    assert fused[0] == ref[0]  # the first loss is taken before any update
    assert fused == pytest.approx(ref, rel=1e-5)


def test_checkpointed_run_follows_the_same_losses():
    ref = train(CFG, TCFG, DATA).losses()
    fast = train(CFG, TCFG.replace(activation_checkpointing=True, optimizer="foreach"), DATA)
    assert fast.losses() == pytest.approx(ref, rel=1e-6)


def test_resume_a_reference_checkpoint_with_the_fused_optimizer(tmp_path):
    full = train(CFG, TCFG.replace(optimizer="fused"), DATA).losses()
    train(CFG, TCFG.replace(steps=3), DATA, out_dir=tmp_path)
    rest = train(CFG, TCFG.replace(optimizer="fused"), DATA, resume_from=tmp_path / "ckpt.pt")
    assert rest.losses()[-3:] == pytest.approx(full[-3:], rel=1e-5)


def test_optimizer_choice_builds_the_named_class():
    from model.trainer import _optimizer
    from model import TransformerLM

    model = TransformerLM(CFG)
    opt = _optimizer(model, TCFG.replace(optimizer="fused"))
    assert isinstance(opt, FastAdamW) and opt.implementation == "fused"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TCFG.replace(optimizer="sgd")
    with pytest.raises(ValueError, match="activation_checkpointing must be a bool"):
        TCFG.replace(activation_checkpointing="yes")


def test_mfu_from_a_given_peak_on_cpu():
    # mfu = train_step_flops(B=4, T=16) * (tokens_per_s / (B*T)) / peak, logged with its source
    result = train(CFG, TCFG.replace(steps=2), DATA, peak_flops_per_s=1e9)
    steps = [e for e in result.events if e["type"] == "step"]
    flops = train_step_flops(CFG, 4, 16)
    for e in steps:
        assert e["mfu"] == pytest.approx(flops * e["tokens_per_s"] / 64 / 1e9)
        assert e["peak_flops_per_s"] == 1e9 and e["peak_source"] == "user-given"
    assert all(e["mfu"] is None and "peak_source" not in e
               for e in train(CFG, TCFG.replace(steps=1), DATA).events if e["type"] == "step")
    with pytest.raises(ValueError, match="peak_flops_per_s"):
        train(CFG, TCFG, DATA, peak_flops_per_s=0)


TINY = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "24",
        "--vocab-size", "256", "--context-length", "8", "--no-progress", "--batch-size", "2"]


def _train_cli(argv, capsys):
    from model.train import main

    try:
        code = run_cli(main, argv, prog="python -m model.train")
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_fast_flags_log_mfu_and_its_source(tmp_path, capsys):
    data = tmp_path / "t.txt"
    data.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    code, out, err = _train_cli(["--train-data", str(data), "--out", str(tmp_path / "run"), *TINY,
                                 "--steps", "3", "--optimizer", "fused", "--activation-checkpointing",
                                 "--attention", "sdpa", "--peak-flops", "2e9"], capsys)
    assert code == 0, err
    steps = [json.loads(line) for line in out.splitlines() if '"step"' in line]
    steps = [e for e in steps if e["type"] == "step"]
    assert steps and all(e["mfu"] > 0 and e["peak_source"] == "user-given" for e in steps)
    assert "MFU = accounting.train_step_flops" in err and "2e+09 FLOP/s (user-given)" in err
    saved = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert saved["peak_flops_per_s"] == 2e9


@pytest.mark.parametrize("argv,needle", [
    (["--peak-flops", "0"], "--peak-flops must be a positive number"),
    (["--optimizer", "sgd"], "invalid choice"),
])
def test_cli_bad_fast_flags_one_line(tmp_path, capsys, argv, needle):
    data = tmp_path / "t.txt"
    data.write_text("abc " * 50)
    code, _, err = _train_cli(["--train-data", str(data), "--out", str(tmp_path), *TINY, *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_torch_baseline_of_the_benchmark_is_the_same_model():
    # validation/torch_baseline.py (torch's modules) with our weights copied in gives our logits,
    # so the benchmark and the GPU campaign compare equal models (same parameter count, same math).
    from model import TransformerLM
    from validation import torch_baseline as baseline

    cfg = CFG.replace(attention="sdpa")
    torch.manual_seed(0)
    ours, theirs = TransformerLM(cfg), baseline.TorchLM(cfg)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    names = {"token_embeddings": "embed", "ln_final": "ln_f", "lm_head": "head", "layers": "blocks",
             "attn.q_proj": "q", "attn.k_proj": "k", "attn.v_proj": "v", "attn.output_proj": "o",
             "ffn.w1": "w1", "ffn.w2": "w2", "ffn.w3": "w3"}
    state = {}
    for key, value in ours.state_dict().items():
        for a, b in names.items():
            key = key.replace(a, b)
        state[key] = value
    theirs.load_state_dict(state)
    ids = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
    torch.testing.assert_close(theirs(ids), ours(ids), rtol=1e-5, atol=1e-5)
    y = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
    from model import cross_entropy

    torch.testing.assert_close(baseline.torch_loss(theirs(ids), y), cross_entropy(ours(ids), y))
