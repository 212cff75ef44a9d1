"""From-scratch CS336-style Transformer LM: layers, RoPE, attention, the model (and, below, the
training stack). Only nn.Module / nn.Parameter / torch.nn.init and tensor ops in the reference
path; `attention="sdpa"` alone calls torch's fused attention.
"""

# --- model core (layers, RoPE, attention, TransformerLM) ---
from model.attention import MultiHeadSelfAttention, causal_mask, scaled_dot_product_attention, softmax
from model.layers import Embedding, Identity, Linear, RMSNorm, SiLUFFN, SwiGLU, silu
from model.rope import RotaryPositionalEmbedding
from model.transformer import TransformerBlock, TransformerLM

__all__ = [
    "Embedding", "Identity", "Linear", "MultiHeadSelfAttention", "RMSNorm", "RotaryPositionalEmbedding",
    "SiLUFFN", "SwiGLU", "TransformerBlock", "TransformerLM", "causal_mask",
    "scaled_dot_product_attention", "silu", "softmax",
]

# --- training stack (loss, optim, data, checkpoint, train, generate): appended below ---
from model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from model.data import get_batch, load_tokens
from model.sampling import generate  # the CLI is model/generate.py (python -m model.generate)
from model.loss import clip_gradients, cross_entropy
from model.optim import AdamW, cosine_lr
from model.fast_optim import FastAdamW  # same update over whole parameter lists (foreach / fused)
from model.train_config import TrainConfig
from model.trainer import TrainResult
from model.trainer import train as train_model  # plain `train` would clash with the CLI module model.train

__all__ += [
    "AdamW", "FastAdamW", "TrainConfig", "TrainResult", "clip_gradients", "cosine_lr", "cross_entropy",
    "generate", "get_batch", "load_checkpoint", "load_tokens", "read_checkpoint",
    "save_checkpoint", "train_model",
]
