"""Per-block activation checkpointing: same loss and gradients as the plain model (the slow twin),
and accounting's checkpointed memory and recompute FLOPs measured on the real model.

Instruments: a TorchDispatchMode that records every storage an op creates (weak references), so
the bytes still alive after the forward are exactly what the forward left for backward, and the
bytes alive when a block's recompute ends are exactly what that recompute saved; FlopCounterMode
for matmul FLOPs (naive attention: FlopCounterMode does not count torch's CPU flash kernel).
"""

import contextlib
import functools
import gc

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.checkpoint import checkpoint as torch_checkpoint
from torch.utils.flop_counter import FlopCounterMode
from torch.utils._python_dispatch import TorchDispatchMode

import model.transformer as transformer
from accounting import activation_bytes, checkpoint_recompute_flops, checkpointed_activation_bytes
from model import TransformerLM, cross_entropy

from ..conftest import tiny

B, T = 2, 16
VARIANTS = [dict(), dict(attention="sdpa"), dict(norm_position="post"),
            dict(norm="none", tie_embeddings=True), dict(ffn="silu", positions="none")]
IDS = ["pre-naive", "pre-sdpa", "post", "nonorm-tied", "silu-nopos"]


def _batch(cfg):
    gen = torch.Generator().manual_seed(1)
    return (torch.randint(0, cfg.vocab_size, (B, T), generator=gen),
            torch.randint(0, cfg.vocab_size, (B, T), generator=gen))


def _model(cfg, checkpointing: bool) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(cfg, activation_checkpointing=checkpointing)


class _Created(TorchDispatchMode):
    """Weak references to every storage an op creates inside the mode (minus `skip`)."""

    def __init__(self, skip=frozenset(), sink=None):
        super().__init__()
        self.refs, self.skip, self.sink = {}, skip, sink

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                ref = StorageWeakRef(st)
                if ref.cdata not in self.skip:
                    self.refs.setdefault(ref.cdata, (ref, st.nbytes()))
        return out

    def alive_bytes(self) -> int:
        gc.collect()
        return sum(n for ref, n in self.refs.values() if not ref.expired())

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        if self.sink is not None:  # a recompute ends here: what it saved is still alive
            self.sink.append(self.alive_bytes())
        return result


def _storages(*tensors) -> set:
    return {StorageWeakRef(t.untyped_storage()).cdata for t in tensors}


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_same_loss_and_gradients_as_plain_model(variant, autocast):
    cfg = tiny(**variant)
    x, y = _batch(cfg)
    grads = []
    for checkpointing in (False, True):
        model = _model(cfg, checkpointing)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):  # recompute re-casts W
            logits = model(x)
        loss = cross_entropy(logits, y)
        loss.backward()
        grads.append((loss.detach(), [p.grad for p in model.parameters()]))
    (loss0, g0), (loss1, g1) = grads
    assert torch.equal(loss0, loss1)
    for a, b in zip(g0, g1):  # bitwise: the recompute runs the same ops in the same order
        assert torch.equal(a, b)


def test_no_grad_forward_does_not_checkpoint_and_matches():
    cfg = tiny()
    x, _ = _batch(cfg)
    with torch.no_grad():
        assert torch.equal(_model(cfg, True)(x), _model(cfg, False)(x))


def _alive_after_forward(cfg, checkpointing: bool) -> int:
    """Bytes the forward + loss leave alive for backward: created storages still alive (token ids
    and targets included, the loss scalar and parameters excluded)."""
    model = _model(cfg, checkpointing)
    x, y = _batch(cfg)
    mode = _Created(skip=_storages(*model.parameters(), *model.buffers()))
    for t in (x, y):  # created outside the mode, saved by the embedding and the loss
        mode.refs[StorageWeakRef(t.untyped_storage()).cdata] = (StorageWeakRef(t.untyped_storage()),
                                                                t.untyped_storage().nbytes())
    with mode:
        loss = cross_entropy(model(x), y)
    return mode.alive_bytes() - loss.untyped_storage().nbytes()


def _block_and_outside(cfg) -> tuple[int, int]:
    """(one block's activation bytes, the bytes outside the blocks), from accounting's totals."""
    one, two = (activation_bytes(cfg.replace(num_layers=n), B, T) for n in (1, 2))
    return two - one, 2 * one - two


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_forward_keeps_block_inputs_plus_outside(variant):
    # The instrument first reproduces accounting's full activation bytes on the plain model;
    # with checkpointing the forward leaves L block inputs (B,T,d) float32 + the outside terms:
    # checkpointed_activation_bytes minus the one block that is live only during its recompute.
    cfg = tiny(**variant)
    assert _alive_after_forward(cfg, False) == activation_bytes(cfg, B, T)
    per_block, outside = _block_and_outside(cfg)
    kept = _alive_after_forward(cfg, True)
    assert kept == cfg.num_layers * B * T * cfg.d_model * 4 + outside
    assert kept + per_block == checkpointed_activation_bytes(cfg, B, T)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_each_recompute_saves_one_block(variant, monkeypatch):
    cfg = tiny(**variant)
    model = _model(cfg, True)
    recomputed: list[int] = []
    skip = _storages(*model.parameters(), *model.buffers())
    monkeypatch.setattr(transformer, "checkpoint", functools.partial(
        torch_checkpoint, context_fn=lambda: (contextlib.nullcontext(), _Created(skip, recomputed))))
    x, y = _batch(cfg)
    cross_entropy(model(x), y).backward()
    per_block, _ = _block_and_outside(cfg)
    assert recomputed == [per_block] * cfg.num_layers


def _step_matmul_flops(cfg, checkpointing: bool) -> int:
    model = _model(cfg, checkpointing)
    x, y = _batch(cfg)
    with FlopCounterMode(display=False) as counter:
        cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.get("attention") != "sdpa"],
                         ids=[i for i, v in zip(IDS, VARIANTS) if v.get("attention") != "sdpa"])
def test_recompute_flops(variant):
    # torch's checkpoint stops a recompute once every tensor backward needs exists again
    # (early stop, its default). A block whose output is not normalized afterwards (pre-norm, or
    # no norm) ends with w2's matmul, whose output nothing saves: that matmul is not rerun.
    # Post-norm RMSNorm saves it (ln2's input), so the whole block forward is rerun.
    cfg = tiny(**variant)
    extra = _step_matmul_flops(cfg, True) - _step_matmul_flops(cfg, False)
    assert extra == checkpoint_recompute_flops(cfg, B, T)
