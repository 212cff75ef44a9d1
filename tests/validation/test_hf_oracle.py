"""Our model and accounting against Hugging Face transformers (the independent oracle): parameter
counts and forward FLOPs of every published preset, logits of the same weights at tiny sizes, and
the bytes saved for backward, part by part, with each difference named and sized."""

from __future__ import annotations

import json

import pytest

from accounting import forward_flops, total_parameters
from accounting.config import PUBLISHED_PRESETS, get_preset
from accounting.hf_config import from_hf_config, hf_config_path

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TINY_HF = {  # tiny configs of each model_type, with the features that matter switched on
    "gpt2": dict(model_type="gpt2", vocab_size=97, n_positions=32, n_embd=48, n_layer=2, n_head=4,
                 activation_function="gelu_new", tie_word_embeddings=True),
    "llama": dict(model_type="llama", vocab_size=97, hidden_size=48, intermediate_size=80,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=32, rope_theta=500000.0, rms_norm_eps=1e-5, hidden_act="silu",
                  tie_word_embeddings=False,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "mistral": dict(model_type="mistral", vocab_size=97, hidden_size=48, intermediate_size=80,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=32, rope_theta=1e6, rms_norm_eps=1e-5, hidden_act="silu",
                    sliding_window=None),
    "qwen2": dict(model_type="qwen2", vocab_size=97, hidden_size=48, intermediate_size=80,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                  max_position_embeddings=32, rope_theta=1e6, rms_norm_eps=1e-6, hidden_act="silu",
                  tie_word_embeddings=True),
}


def _published(name: str) -> dict:
    return json.loads(hf_config_path(name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", PUBLISHED_PRESETS)
def test_parameters_equal_transformers_for_every_published_preset(name):
    from model import TransformerLM
    from validation.hf_reference import hf_parameters

    cfg = get_preset(name)
    hf = hf_parameters(_published(name)).parameters
    assert total_parameters(cfg) == hf
    assert sum(p.numel() for p in TransformerLM(cfg, device="meta").parameters()) == hf


@pytest.mark.parametrize("name", PUBLISHED_PRESETS)
def test_forward_flops_equal_transformers(name):
    # FlopCounterMode on HF's model (sdpa: its math path on the meta device; GPT-2's Conv1D is an
    # addmm whose bias add is not a matmul FLOP, as ours is not) against the accounting, B=1, T=64
    from validation.hf_reference import hf_training_step

    step = hf_training_step(_published(name), seq_len=64, attn_implementation="sdpa",
                            dropout=False, backward=False)
    assert forward_flops(get_preset(name), 1, 64) == step.forward_flops


@pytest.mark.parametrize("model_type", TINY_HF)
def test_same_weights_give_the_same_logits(model_type):
    from model import TransformerLM
    from validation.hf_reference import hf_model, our_state_dict

    hf_config = TINY_HF[model_type]
    cfg = from_hf_config(hf_config)
    torch.manual_seed(0)
    hf = hf_model(hf_config, device="cpu", dropout=False).eval()
    with torch.no_grad():  # weights large enough that attention is far from uniform
        for name, p in hf.named_parameters():
            is_norm = "norm" in name or "ln_" in name
            p.normal_(1.0 if is_norm and name.endswith("weight") else 0.0, 0.1 if is_norm else 0.3)
    ours = TransformerLM(cfg).eval()
    ours.load_state_dict(our_state_dict(hf, cfg))
    ids = torch.randint(0, cfg.vocab_size, (2, 20))
    with torch.no_grad():
        theirs, mine = hf(input_ids=ids).logits, ours(ids)
    assert theirs.abs().max() > 3  # not a degenerate model
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type,dropout", [("gpt2", False), ("gpt2", True), ("llama", False)])
def test_saved_bytes_differ_from_transformers_only_by_named_causes(model_type, dropout):
    from validation.hf_compare import saved_bytes_vs_hf

    hf_config = {**TINY_HF[model_type], "num_hidden_layers": 3} if model_type == "llama" else \
        {**TINY_HF[model_type], "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}
    parts = saved_bytes_vs_hf(hf_config, batch_size=2, seq_len=32, dropout=dropout)
    for part in parts:
        assert part.explained, part
    causes = {cause for part in parts for cause, _ in part.causes}
    # hand check of one cause, GPT-2 block norms: 2 LayerNorms x 2 blocks x (4BTd - 4BT),
    # B=2, T=32, d=48: 4 x (12,288 - 256) = 48,128 bytes
    if model_type == "gpt2":
        norms = next(p for p in parts if p.part == "block norms")
        assert norms.ours - norms.hf == 48_128
        assert ("dropout_masks" in causes) == dropout
    else:
        assert {"softmax", "rope_tables", "silu_kernel", "loss"} <= causes
