"""Sampling: greedy = argmax, top-p keeps the smallest set reaching p, EOS stop, context crop."""

import pytest
import torch

from model.sampling import generate
from model.sampling import next_token_probs


class _Scripted(torch.nn.Module):
    """Stand-in LM: the next-token logits are a fixed table row chosen by the last token id."""

    def __init__(self, table: torch.Tensor, context_length: int = 4):
        super().__init__()
        self.table = torch.nn.Parameter(table)
        self.config = type("Cfg", (), {"context_length": context_length})()
        self.seen_lengths: list[int] = []

    def forward(self, ids):  # (1, T) -> (1, T, V)
        self.seen_lengths.append(ids.shape[1])
        return self.table[ids]


def test_temperature_zero_is_argmax_chain():
    # token i -> argmax of row i; rows built so the chain is 0 -> 3 -> 1 -> 2 -> 0 ...
    table = torch.full((4, 4), -1.0)
    for src, dst in {0: 3, 3: 1, 1: 2, 2: 0}.items():
        table[src, dst] = 2.0
    out = generate(_Scripted(table), [0], 6, temperature=0.0)
    assert out == [3, 1, 2, 0, 3, 1]


def test_top_p_hand_example():
    # probs 0.5, 0.3, 0.15, 0.05: p = 0.7 needs {0.5, 0.3} (0.5 alone is short) -> 0.625, 0.375
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    got = next_token_probs(probs.log(), temperature=1.0, top_p=0.7)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.625, 0.0, 0.375]))
    # p = 0.8 is reached exactly by {0.5, 0.3}: still two tokens; p = 0.81 needs the 0.15 too
    assert (next_token_probs(probs.log(), top_p=0.8) > 0).sum() == 2
    torch.testing.assert_close(next_token_probs(probs.log(), top_p=0.81),
                               torch.tensor([0.15, 0.5, 0.0, 0.3]) / 0.95)


def test_temperature_scales_logits():
    logits = torch.tensor([1.0, 2.0, 4.0])
    expected = torch.softmax(logits / 0.5, dim=0)  # independent reference: torch.softmax
    torch.testing.assert_close(next_token_probs(logits, temperature=0.5), expected)


def test_sampling_follows_the_distribution_and_stops_at_eos():
    table = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]))
    gen = torch.Generator().manual_seed(0)
    out = generate(_Scripted(table, context_length=1), [0], 3000, top_p=0.85, generator=gen)
    counts = torch.bincount(torch.tensor(out), minlength=3).float() / len(out)
    assert counts[2] == 0  # cut by top-p: 0.7 + 0.2 = 0.9 >= 0.85
    assert abs(counts[0] - 0.7 / 0.9) < 0.03
    stopped = generate(_Scripted(table), [0], 100, eos_id=1, generator=gen)
    assert stopped[-1] == 1 and 1 not in stopped[:-1]


def test_context_is_cropped_to_context_length():
    model = _Scripted(torch.zeros(5, 5), context_length=4)
    generate(model, [1, 2, 3, 4, 0, 1], 3, temperature=0.0)
    assert model.seen_lengths == [4, 4, 4]


def test_bad_arguments():
    with pytest.raises(ValueError):
        next_token_probs(torch.zeros(3), top_p=0.0)
    with pytest.raises(ValueError):
        generate(_Scripted(torch.zeros(3, 3)), [], 2)
