"""From-scratch CS336-style Transformer LM: layers, RoPE, attention, the model (and, below, the
training stack). Only nn.Module / nn.Parameter / torch.nn.init and tensor ops in the reference
path; `attention="sdpa"` alone calls torch's fused attention.
"""

# --- model core (layers, RoPE, attention, TransformerLM) ---
from model.attention import MultiHeadSelfAttention, causal_mask, scaled_dot_product_attention, softmax
from model.kv_cache import KVCache
from model.layers import (
    MLP, Dropout, Embedding, Identity, LayerNorm, LearnedPositions, Linear, RMSNorm, SwiGLU,
    gelu_tanh, silu,
)
from model.rope import RotaryPositionalEmbedding
from model.transformer import TransformerBlock, TransformerLM

__all__ = [
    "MLP", "Dropout", "Embedding", "Identity", "KVCache", "LayerNorm", "LearnedPositions", "Linear",
    "MultiHeadSelfAttention", "RMSNorm", "RotaryPositionalEmbedding", "SwiGLU", "TransformerBlock",
    "TransformerLM", "causal_mask", "gelu_tanh", "scaled_dot_product_attention", "silu", "softmax",
]

# --- training stack (loss, optim, data, checkpoint, config): appended below ---
# The training loop is `model.trainer.train` and sampling `model.sampling.generate`: the names
# `model.train` and `model.generate` are the CLI modules (`python -m model.train`), so no package
# attribute is both a function and a module.
from model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from model.data import get_batch, load_tokens
from model.loss import clip_gradients, cross_entropy
from model.optim import AdamW, cosine_lr
from model.fast_optim import FastAdamW  # same update over whole parameter lists (foreach / fused)
from model.train_config import TrainConfig
from model.trainer import TrainResult

__all__ += [
    "AdamW", "FastAdamW", "TrainConfig", "TrainResult", "clip_gradients", "cosine_lr", "cross_entropy",
    "get_batch", "load_checkpoint", "load_tokens", "read_checkpoint",
    "save_checkpoint",
]
