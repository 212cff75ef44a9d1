"""Incremental decoding with a KV cache: the same tokens as recomputing the prefix, for every
attention kind and grouped-query sharing, batches of prompts of different lengths, past the
context window; the cache's own bytes; sampling reproducible from a seeded generator."""

from __future__ import annotations

import pytest
import torch

from accounting.config import ModelConfig
from accounting.errors import UserError
from model import TransformerLM
from model.kv_cache import KVCache
from model.sampling import generate, generate_batch

PROMPTS = [[1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11, 12, 13], [3, 3, 3]]


def _model(**variants) -> TransformerLM:
    cfg = ModelConfig(vocab_size=37, context_length=16, d_model=32, num_layers=2, num_heads=4,
                      d_ff=40, **variants)
    torch.manual_seed(0)
    return TransformerLM(cfg)


CONFIGS = [
    {}, {"attention": "sdpa"}, {"num_kv_heads": 2}, {"num_kv_heads": 1, "attention": "sdpa"},
    {"num_kv_heads": 1}, {"num_kv_heads": 2, "attention": "sdpa"},
    {"norm_position": "post", "positions": "none"}, {"tie_embeddings": True, "ffn": "silu", "norm": "none"},
]


@pytest.mark.parametrize("variants", CONFIGS, ids=str)
def test_greedy_tokens_identical_with_and_without_the_cache(variants):
    model = _model(**variants)
    # 20 new tokens after prompts of 2-5 tokens run past context_length 16: the last steps of each
    # row fall back to the sliding window, which both paths must then share
    cached = generate_batch(model, PROMPTS, 20, temperature=0, use_cache=True)
    plain = generate_batch(model, PROMPTS, 20, temperature=0, use_cache=False)
    assert cached == plain
    # the reference: each prompt alone, the prefix recomputed at every token (the seed's generate)
    assert plain == [generate(model, p, 20, temperature=0, use_cache=False) for p in PROMPTS]
    assert all(len(row) == 20 for row in cached)


def test_chunked_prefill_and_decode_give_the_full_forward_logits():
    model = _model(num_kv_heads=2).eval()
    ids = torch.randint(0, 37, (3, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids)  # (3, 12, V), no cache
        cache = KVCache.for_model(model, 3, 12)
        got = [model(ids[:, :5], kv_cache=cache)[:, -1]]  # prefill of 5 (positions by the cache)
        got.append(model(ids[:, 5:8], torch.arange(5, 8), kv_cache=cache)[:, -1])  # a block of 3
        got += [model(ids[:, i:i + 1], torch.arange(i, i + 1), kv_cache=cache)[:, -1] for i in range(8, 12)]
    assert cache.length == 12
    torch.testing.assert_close(torch.stack(got, 1), full[:, [4, 7, 8, 9, 10, 11]], rtol=1e-5, atol=1e-5)


def test_sampling_is_reproducible_from_a_seeded_generator():
    model = _model(num_kv_heads=2, attention="sdpa")

    def run(seed, use_cache):
        gen = torch.Generator().manual_seed(seed)
        return generate_batch(model, PROMPTS, 12, temperature=0.9, top_p=0.9, generator=gen,
                              use_cache=use_cache)

    first = run(1, True)
    assert first == run(1, True) and first != run(2, True)
    assert first == run(1, False)  # the same draws; logits equal to rounding here


def test_each_row_stops_at_its_own_eos():
    model = _model()
    free = generate_batch(model, [[1, 2], [3, 4]], 8, temperature=0)
    eos = free[0][2]
    stopped = generate_batch(model, [[1, 2], [3, 4]], 8, temperature=0, eos_id=eos)
    cut = free[0].index(eos) + 1
    assert stopped[0] == free[0][:cut]
    assert stopped[1] == (free[1][:free[1].index(eos) + 1] if eos in free[1] else free[1])


def test_cache_bytes_and_limits():
    cfg = ModelConfig(vocab_size=37, context_length=16, d_model=32, num_layers=3, num_heads=4,
                      num_kv_heads=2, d_ff=40)
    cache = KVCache(cfg, batch_size=5, capacity=10)
    # K and V per block, (B, h_kv, capacity, d_k) = (5, 2, 10, 8) float32: 2 * 3 * 5*2*10*8 * 4 bytes
    assert cache.nbytes == 2 * 3 * 5 * 2 * 10 * 8 * 4 == 19_200
    assert [tuple(t.shape) for t in cache.tensors()] == [(5, 2, 10, 8)] * 6
    with pytest.raises(ValueError, match="exceeds context_length"):
        KVCache(cfg, 1, 17)
    with pytest.raises(ValueError, match="full"):
        cache.layer(0).append(torch.zeros(5, 2, 11, 8), torch.zeros(5, 2, 11, 8))


def test_bad_arguments():
    model = _model()
    with pytest.raises(UserError, match="at least one token"):
        generate_batch(model, [[1], []], 2)
    with pytest.raises(UserError, match="no prompts"):
        generate_batch(model, [], 2)

    class NotAnLM(torch.nn.Module):
        config = model.config

    with pytest.raises(UserError, match="takes no KV cache"):
        generate(NotAnLM(), [1], 2, use_cache=True)
