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
