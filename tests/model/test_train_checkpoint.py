"""save_checkpoint / load_checkpoint round trips (path and BytesIO) and atomicity."""

import io

import pytest
import torch

from accounting.config import ModelConfig
from model import AdamW, TransformerLM, load_checkpoint, read_checkpoint, save_checkpoint

CFG = ModelConfig(vocab_size=32, context_length=8, d_model=16, num_layers=1, num_heads=2, d_ff=24)


def _trained_pair(seed: int):
    torch.manual_seed(seed)
    model = TransformerLM(CFG)
    opt = AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, 32, (2, 8))
    model(x).sum().backward()
    opt.step()
    return model, opt


def _assert_same(model_a, opt_a, model_b, opt_b):
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sa["step"] == sb["step"]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


@pytest.mark.parametrize("as_file", [False, True])
def test_round_trip(tmp_path, as_file):
    model, opt = _trained_pair(0)
    fresh, fresh_opt = _trained_pair(1)
    target = io.BytesIO() if as_file else tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(model, opt, 17, target, note="hi")
    if as_file:
        target.seek(0)
    assert load_checkpoint(target, fresh, fresh_opt) == 17
    _assert_same(model, opt, fresh, fresh_opt)
    if as_file:
        target.seek(0)
    payload = read_checkpoint(target)
    assert ModelConfig.from_dict(payload["model_config"]) == CFG
    assert payload["extra"] == {"note": "hi"}


def test_failed_save_leaves_old_file_intact(tmp_path):
    path = tmp_path / "ckpt.pt"
    model, opt = _trained_pair(0)
    save_checkpoint(model, opt, 1, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(model, opt, 2, path, bad=lambda: None)  # a lambda cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_load_errors(tmp_path):
    model, _ = _trained_pair(0)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt", model)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", model)
